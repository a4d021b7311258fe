package rig

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
)

// ResolveUnknown does what on-call does for the merchants' refunds stuck
// with an unknown outcome (SPEC §12: a rejection after an ambiguous attempt
// never ends a refund by itself): it asks the refund's provider, by the
// refund's id, what became of it, and records that through the ops API
// (`backflow ops resolve`). It returns how many it resolved.
func (r *Rig) ResolveUnknown(ctx context.Context, merchants ...uuid.UUID) (int, error) {
	refunds, err := Refunds(ctx, r.Store, merchants...)
	if err != nil {
		return 0, err
	}
	key, err := r.opsKey(ctx)
	if err != nil {
		return 0, err
	}
	c := &ops.Client{BaseURL: r.APIURL, Key: key}
	n := 0
	for _, rf := range refunds {
		if rf.Status != refund.StatusProcessing || !rf.Stuck || rf.StuckReason != refund.StuckUnknown {
			continue
		}
		status, seen, err := r.providerSays(ctx, rf)
		if err != nil {
			return n, err
		}
		if status == "" {
			continue // still processing at the provider: nothing to resolve
		}
		_, _, err = c.RefundAction(ctx, "resolve", rf.ID.String(), ops.ActionRequest{Status: status,
			Reason: "reliability on-call: the provider says " + seen})
		if err != nil {
			return n, fmt.Errorf("resolve refund %s: %w", rf.ID, err)
		}
		n++
	}
	return n, nil
}

// providerSays looks the refund up at its provider by its id and returns
// the outcome to record ("" while it is still processing there).
func (r *Rig) providerSays(ctx context.Context, rf refund.Refund) (refund.Status, string, error) {
	conn, ok := r.Providers.Get(rf.Provider)
	if !ok {
		return "", "", fmt.Errorf("provider %q is not configured", rf.Provider)
	}
	tx, err := r.Store.GetTransaction(ctx, refund.OfMerchant(rf.MerchantID), rf.TransactionID)
	if err != nil {
		return "", "", err
	}
	l := providers.Lookup{RefundID: rf.ID.String(), PaymentReference: tx.ProviderReference}
	var res providers.Result
	if rf.Method == refund.MethodPayoutRefund {
		res, err = conn.PayoutStatus(ctx, l)
	} else {
		res, err = conn.RefundStatus(ctx, l)
	}
	switch {
	case errors.Is(err, providers.ErrNotFound):
		return refund.StatusFailed, "it holds no such refund", nil
	case err != nil:
		return "", "", fmt.Errorf("look refund %s up: %w", rf.ID, err)
	case !res.Status.Final():
		return "", "", nil
	case res.Status == providers.StatusSucceeded:
		return refund.StatusSucceeded, "it succeeded", nil
	case res.Status == providers.StatusDeclined:
		return refund.StatusDeclined, "it was declined", nil
	}
	return refund.StatusFailed, "it is " + string(res.Status), nil
}

// opsKey returns the rig's ops API key, made on first use.
func (r *Rig) opsKey(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.opsAPIKey == "" {
		key, err := r.Store.CreateAPIKey(ctx, uuid.Nil, "reliability-ops", []string{refund.ScopeOps})
		if err != nil {
			return "", fmt.Errorf("create ops key: %w", err)
		}
		r.opsAPIKey = key
	}
	return r.opsAPIKey, nil
}
