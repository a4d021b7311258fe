package rig

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/store"
)

// pollEvery is how often waits poll.
const pollEvery = 100 * time.Millisecond

// Poll calls cond until it reports true, it fails, or timeout passes.
func Poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		ok, err := cond(ctx)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%s: not within %s (last error: %w)", what, timeout, lastErr)
			}
			return fmt.Errorf("%s: not within %s", what, timeout)
		case <-time.After(pollEvery):
		}
	}
}

// Live counts the merchants' refunds still PENDING or PROCESSING (up to 100 each).
func Live(ctx context.Context, st *store.Store, merchants ...uuid.UUID) (int, error) {
	n := 0
	for _, m := range merchants {
		for _, status := range []refund.Status{refund.StatusPending, refund.StatusProcessing} {
			rs, _, err := st.ListRefunds(ctx, refund.RefundFilter{Scope: refund.OfMerchant(m), Status: status, Limit: 100})
			if err != nil {
				return 0, err
			}
			n += len(rs)
		}
	}
	return n, nil
}

// WaitSettled waits until none of the merchants' refunds is PENDING or PROCESSING.
func WaitSettled(ctx context.Context, st *store.Store, timeout time.Duration, merchants ...uuid.UUID) error {
	live := 0
	err := Poll(ctx, timeout, "every refund final", func(ctx context.Context) (bool, error) {
		var err error
		live, err = Live(ctx, st, merchants...)
		return live == 0, err
	})
	if err != nil {
		return fmt.Errorf("%w: %d refunds still live", err, live)
	}
	return nil
}

// Refunds returns every refund of the merchants.
func Refunds(ctx context.Context, st *store.Store, merchants ...uuid.UUID) ([]refund.Refund, error) {
	var out []refund.Refund
	for _, m := range merchants {
		var after uuid.UUID
		for {
			rs, next, err := st.ListRefunds(ctx, refund.RefundFilter{Scope: refund.OfMerchant(m), After: after, Limit: 100})
			if err != nil {
				return nil, err
			}
			out = append(out, rs...)
			if next == uuid.Nil {
				break
			}
			after = next
		}
	}
	return out, nil
}

// CountByStatus counts refunds by status.
func CountByStatus(rs []refund.Refund) map[refund.Status]int {
	out := map[refund.Status]int{}
	for _, r := range rs {
		out[r.Status]++
	}
	return out
}
