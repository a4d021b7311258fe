// Package invariants checks, after the fact, the money rules Backflow must
// never break, whatever faults it went through: no over-refund, a ledger that
// explains every balance, no reservation left behind, one refund at the
// provider per succeeded refund, and one workflow per refund.
//
// It reads Postgres with its own SQL on purpose: an auditor that reused the
// store's queries would share their bugs. Every query runs in one read-only
// REPEATABLE READ transaction, so the check sees one consistent snapshot and
// can run while refunds are still moving (the soak does).
package invariants

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Rules a Violation names.
const (
	RuleOverRefund        = "over-refund"        // refunded + reserved > captured (transaction, line item, redemption)
	RuleLedger            = "ledger"             // ledger entries do not explain the balances
	RuleReservation       = "reservation"        // a reservation neither settled, released nor held by a live refund
	RuleTransactionStatus = "transaction-status" // CAPTURED / PARTIALLY_REFUNDED / REFUNDED disagrees with the balance
	RuleEvents            = "events"             // outbox rows missing, doubled or out of sequence
	RuleProvider          = "provider"           // not exactly one refund at the provider per succeeded refund
	RuleWorkflow          = "workflow"           // a refund without its workflow, or a workflow that died
	RuleWebhook           = "webhook"            // an event not delivered to a subscribed endpoint
)

// Rules lists every rule.
var Rules = []string{RuleOverRefund, RuleLedger, RuleReservation, RuleTransactionStatus, RuleEvents, RuleProvider, RuleWorkflow, RuleWebhook}

// Violation is one broken rule about one object.
type Violation struct {
	Rule          string     `json:"rule"`
	Subject       string     `json:"subject"` // "refund <id>", "transaction <id>", ...
	Detail        string     `json:"detail"`
	RefundID      *uuid.UUID `json:"refundId,omitempty"`
	TransactionID *uuid.UUID `json:"transactionId,omitempty"`
}

func (v Violation) String() string {
	s := v.Rule + ": " + v.Subject + ": " + v.Detail
	if v.TransactionID != nil && !strings.Contains(v.Subject, v.TransactionID.String()) {
		s += " (transaction " + v.TransactionID.String() + ")"
	}
	return s
}

// Counter tells how many refunds or payouts a provider holds for an
// idempotency key (the Backflow refund id). The sandbox PSP implements it.
type Counter interface {
	Count(idempotencyKey string) int
}

// Options scope and extend a check.
type Options struct {
	// Merchants limits the check to these merchants' transactions and
	// refunds; empty checks every merchant.
	Merchants []uuid.UUID
	// CreatedFrom and CreatedTo, when set, limit the check to transactions
	// and refunds created in [from, to): a bounded check of a production
	// database. Each object in range is checked against all its rows.
	CreatedFrom, CreatedTo time.Time
	// Provider, when set, is asked how many provider-side refunds each
	// refund has: exactly one for SUCCEEDED, none for CANCELED, at most one
	// otherwise. Only set it when every refund in scope went to this provider.
	Provider Counter
	// Temporal, when set, is asked for the workflow of every refund older
	// than WorkflowGrace: it must exist, must not have failed or been
	// terminated, must still run while the refund is PENDING or PROCESSING,
	// and must have ended WorkflowGrace after the refund did.
	Temporal      client.Client
	Namespace     string        // for Temporal; default "default"
	WorkflowGrace time.Duration // default 5s
	// HistoryRetention, when set, excuses a final refund completed longer
	// ago than it from having a workflow: its history may be gone.
	HistoryRetention time.Duration
	// LiveWorkflowsOnly limits the Temporal look-ups to refunds in progress,
	// the ones a dead workflow would leave unfinished (a cheap check to run
	// often).
	LiveWorkflowsOnly bool
	// Webhooks, when true, requires every event older than WebhookGrace to
	// have a succeeded delivery attempt to each active endpoint of its
	// merchant subscribed to its type (endpoints created after the event
	// excepted).
	Webhooks     bool
	WebhookGrace time.Duration
	// Concurrency of Temporal and provider look-ups; default 16.
	Concurrency int
}

// Report is the result of one check.
type Report struct {
	Transactions int            `json:"transactions"`
	Refunds      int            `json:"refunds"`
	ByStatus     map[string]int `json:"byStatus"`
	Workflows    int            `json:"workflows"`  // workflows described
	ProviderOK   int            `json:"providerOk"` // refunds whose provider count was checked
	Events       int            `json:"events"`     // outbox rows checked
	Deliveries   int            `json:"deliveries"` // event × endpoint deliveries checked
	Violations   []Violation    `json:"violations"`
}

// ViolationsByRule counts the violations of each rule (every rule listed).
func (r Report) ViolationsByRule() map[string]int {
	out := map[string]int{}
	for _, rule := range Rules {
		out[rule] = 0
	}
	for _, v := range r.Violations {
		out[v.Rule]++
	}
	return out
}

// OK reports whether no rule was broken.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// Summary is one line: what was checked and how many violations.
func (r Report) Summary() string {
	statuses := make([]string, 0, len(r.ByStatus))
	for s, n := range r.ByStatus {
		statuses = append(statuses, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(statuses)
	return fmt.Sprintf("%d violations; %d refunds (%s), %d transactions, %d events, %d workflows, %d provider counts, %d deliveries",
		len(r.Violations), r.Refunds, strings.Join(statuses, ", "), r.Transactions, r.Events, r.Workflows, r.ProviderOK, r.Deliveries)
}

// Check runs every rule and returns what it found. An error means the check
// itself could not run (database or Temporal unreachable), not a violation.
func Check(ctx context.Context, pool *pgxpool.Pool, o Options) (Report, error) {
	if o.WorkflowGrace <= 0 {
		o.WorkflowGrace = 5 * time.Second
	}
	if o.WebhookGrace <= 0 {
		o.WebhookGrace = 5 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Namespace == "" {
		o.Namespace = client.DefaultNamespace
	}
	c := &checker{opts: o, report: Report{ByStatus: map[string]int{}}}
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		c.tx = tx
		// Safe on a busy production database: no query may run away.
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '60s'`); err != nil {
			return fmt.Errorf("set statement timeout: %w", err)
		}
		for _, step := range []func(context.Context) error{c.balances, c.lineItems, c.redemptions, c.refunds, c.events, c.webhooks} {
			if err := step(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return c.report, fmt.Errorf("check invariants: %w", err)
	}
	if err := c.external(ctx); err != nil {
		return c.report, err
	}
	sort.SliceStable(c.report.Violations, func(i, j int) bool {
		a, b := c.report.Violations[i], c.report.Violations[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Subject < b.Subject
	})
	return c.report, nil
}

type checker struct {
	opts   Options
	tx     pgx.Tx
	mu     sync.Mutex
	report Report
	// refunds to check outside Postgres
	live []refundRow
}

func (c *checker) add(rule, subject, format string, args ...any) {
	c.addFor(rule, subject, nil, nil, format, args...)
}

// addFor records a violation about a refund and/or a transaction.
func (c *checker) addFor(rule, subject string, refund, tx *uuid.UUID, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report.Violations = append(c.report.Violations, Violation{Rule: rule, Subject: subject, Detail: fmt.Sprintf(format, args...),
		RefundID: refund, TransactionID: tx})
}

// scope is the filter as SQL arguments $1 (merchants, NULL for every one),
// $2 and $3 (created range, NULL for open ends).
func (c *checker) scope() []any {
	var merchants []uuid.UUID
	if len(c.opts.Merchants) > 0 {
		merchants = c.opts.Merchants
	}
	return []any{merchants, nullTime(c.opts.CreatedFrom), nullTime(c.opts.CreatedTo)}
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// scoped is the filter on a table alias with merchant_id and created_at.
func scoped(alias string) string {
	return fmt.Sprintf(`($1::uuid[] IS NULL OR %[1]s.merchant_id = ANY($1)) AND ($2::timestamptz IS NULL OR %[1]s.created_at >= $2)
		AND ($3::timestamptz IS NULL OR %[1]s.created_at < $3)`, alias)
}

// balances: per transaction, the CHECK-backed bound, the ledger and the status.
func (c *checker) balances(ctx context.Context) error {
	rows, err := c.tx.Query(ctx, `SELECT t.id, t.amount, t.refunded_amount, t.reserved_amount, t.status,
			coalesce(sum(l.amount) FILTER (WHERE l.kind = 'RESERVE'), 0),
			coalesce(sum(l.amount) FILTER (WHERE l.kind = 'SETTLE'), 0),
			coalesce(sum(l.amount) FILTER (WHERE l.kind = 'RELEASE'), 0),
			coalesce(sum(l.amount) FILTER (WHERE l.kind = 'REVERSE'), 0),
			t.gift_card_amount, t.gift_card_refunded, t.gift_card_reserved,
			(SELECT coalesce(sum(amount), 0) FROM gift_card_redemptions g WHERE g.transaction_id = t.id),
			(SELECT coalesce(sum(refunded_amount), 0) FROM gift_card_redemptions g WHERE g.transaction_id = t.id),
			(SELECT coalesce(sum(reserved_amount), 0) FROM gift_card_redemptions g WHERE g.transaction_id = t.id)
		FROM transactions t LEFT JOIN ledger_entries l ON l.transaction_id = t.id
		WHERE `+scoped("t")+`
		GROUP BY t.id`, c.scope()...)
	if err != nil {
		return fmt.Errorf("read balances: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var amount, refunded, reserved, res, settle, release, reverse int64
		var gcAmount, gcRefunded, gcReserved, gAmount, gRefunded, gReserved int64
		var status string
		if err := rows.Scan(&id, &amount, &refunded, &reserved, &status, &res, &settle, &release, &reverse,
			&gcAmount, &gcRefunded, &gcReserved, &gAmount, &gRefunded, &gReserved); err != nil {
			return fmt.Errorf("scan balance: %w", err)
		}
		c.report.Transactions++
		subject := "transaction " + id.String()
		tx := &id
		if refunded < 0 || reserved < 0 || refunded+reserved > amount {
			c.addFor(RuleOverRefund, subject, nil, tx, "refunded %d + reserved %d > captured %d", refunded, reserved, amount)
		}
		if pm := (refunded - gcRefunded) + (reserved - gcReserved); pm > amount-gcAmount {
			c.addFor(RuleOverRefund, subject, nil, tx, "the payment method holds %d refunded or reserved, more than captured %d less gift cards %d",
				pm, amount, gcAmount)
		}
		if gcAmount != gAmount || gcRefunded != gRefunded || gcReserved != gReserved {
			c.addFor(RuleLedger, subject, nil, tx, "gift-card totals %d/%d/%d (amount/refunded/reserved) differ from its redemptions %d/%d/%d",
				gcAmount, gcRefunded, gcReserved, gAmount, gRefunded, gReserved)
		}
		if res-settle-release != reserved {
			c.addFor(RuleLedger, subject, nil, tx, "RESERVE %d − SETTLE %d − RELEASE %d = %d, but reserved is %d", res, settle, release, res-settle-release, reserved)
		}
		if settle-reverse != refunded {
			c.addFor(RuleLedger, subject, nil, tx, "SETTLE %d − REVERSE %d = %d, but refunded is %d", settle, reverse, settle-reverse, refunded)
		}
		switch want := wantTxStatus(status, amount, refunded); {
		case want != status:
			c.addFor(RuleTransactionStatus, subject, nil, tx, "status %s with %d of %d refunded, want %s", status, refunded, amount, want)
		}
	}
	return rows.Err()
}

func wantTxStatus(status string, amount, refunded int64) string {
	switch status {
	case "AUTHORIZED", "VOIDED":
		if refunded == 0 {
			return status
		}
		return "REFUNDED or PARTIALLY_REFUNDED"
	}
	switch {
	case refunded == 0:
		return "CAPTURED"
	case refunded == amount:
		return "REFUNDED"
	default:
		return "PARTIALLY_REFUNDED"
	}
}

// lineItems: each line item's own bound, and its quantities explained by the
// refunds that reserved (live) or settled (succeeded) it.
func (c *checker) lineItems(ctx context.Context) error {
	const units = `coalesce((SELECT sum((li->>'quantity')::bigint) FROM refunds r, jsonb_array_elements(r.line_items) li
		WHERE r.transaction_id = i.transaction_id AND li->>'id' = i.id AND r.status IN (%s)), 0)`
	rows, err := c.tx.Query(ctx, `SELECT i.transaction_id, i.id, i.quantity, i.refunded_quantity, i.reserved_quantity, `+
		fmt.Sprintf(units, `'PENDING', 'PROCESSING'`)+`, `+fmt.Sprintf(units, `'SUCCEEDED'`)+`
		FROM transaction_line_items i JOIN transactions t ON t.id = i.transaction_id
		WHERE `+scoped("t"), c.scope()...)
	if err != nil {
		return fmt.Errorf("read line items: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tx uuid.UUID
		var id string
		var qty, refunded, reserved, live, settled int64
		if err := rows.Scan(&tx, &id, &qty, &refunded, &reserved, &live, &settled); err != nil {
			return fmt.Errorf("scan line item: %w", err)
		}
		subject := fmt.Sprintf("line item %s of transaction %s", id, tx)
		if refunded < 0 || reserved < 0 || refunded+reserved > qty {
			c.add(RuleOverRefund, subject, "refunded %d + reserved %d > quantity %d", refunded, reserved, qty)
		}
		if reserved != live || refunded != settled {
			c.add(RuleLedger, subject, "reserved %d / refunded %d units, but live refunds hold %d and succeeded refunds %d",
				reserved, refunded, live, settled)
		}
	}
	return rows.Err()
}

// redemptions: each gift-card redemption's own bound and balances.
func (c *checker) redemptions(ctx context.Context) error {
	rows, err := c.tx.Query(ctx, `SELECT g.transaction_id, g.id, g.amount, g.refunded_amount, g.reserved_amount,
			coalesce(sum(r.amount) FILTER (WHERE r.status IN ('PENDING', 'PROCESSING')), 0),
			coalesce(sum(r.amount) FILTER (WHERE r.status = 'SUCCEEDED'), 0)
		FROM gift_card_redemptions g JOIN transactions t ON t.id = g.transaction_id
		LEFT JOIN refunds r ON r.transaction_id = g.transaction_id AND r.target_type = 'GIFT_CARD_REDEMPTION' AND r.target_id = g.id
		WHERE `+scoped("t")+`
		GROUP BY g.transaction_id, g.id`, c.scope()...)
	if err != nil {
		return fmt.Errorf("read gift card redemptions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tx uuid.UUID
		var id string
		var amount, refunded, reserved, live, settled int64
		if err := rows.Scan(&tx, &id, &amount, &refunded, &reserved, &live, &settled); err != nil {
			return fmt.Errorf("scan gift card redemption: %w", err)
		}
		subject := fmt.Sprintf("gift card redemption %s of transaction %s", id, tx)
		if refunded < 0 || reserved < 0 || refunded+reserved > amount {
			c.add(RuleOverRefund, subject, "refunded %d + reserved %d > redeemed %d", refunded, reserved, amount)
		}
		if reserved != live || refunded != settled {
			c.add(RuleLedger, subject, "reserved %d / refunded %d, but live refunds hold %d and succeeded refunds %d",
				reserved, refunded, live, settled)
		}
	}
	return rows.Err()
}

type refundRow struct {
	id        uuid.UUID
	tx        uuid.UUID
	status    string
	age       time.Duration // since created
	endedFor  time.Duration // since completed (0 while live)
	wfStarted bool
}

// refunds: each refund's ledger matches its status (one RESERVE of its
// amount; SETTLE iff SUCCEEDED; RELEASE iff DECLINED, FAILED or CANCELED;
// neither while live).
func (c *checker) refunds(ctx context.Context) error {
	rows, err := c.tx.Query(ctx, `SELECT r.id, r.transaction_id, r.amount, r.status, r.workflow_started_at IS NOT NULL,
			extract(epoch FROM now() - r.created_at), coalesce(extract(epoch FROM now() - r.completed_at), 0),
			count(l.id) FILTER (WHERE l.kind = 'RESERVE'), coalesce(sum(l.amount) FILTER (WHERE l.kind = 'RESERVE'), 0),
			count(l.id) FILTER (WHERE l.kind = 'SETTLE'), coalesce(sum(l.amount) FILTER (WHERE l.kind = 'SETTLE'), 0),
			count(l.id) FILTER (WHERE l.kind = 'RELEASE'), coalesce(sum(l.amount) FILTER (WHERE l.kind = 'RELEASE'), 0),
			count(l.id) FILTER (WHERE l.kind = 'REVERSE'), coalesce(sum(l.amount) FILTER (WHERE l.kind = 'REVERSE'), 0)
		FROM refunds r LEFT JOIN ledger_entries l ON l.refund_id = r.id
		WHERE `+scoped("r")+`
		GROUP BY r.id ORDER BY r.id`, c.scope()...)
	if err != nil {
		return fmt.Errorf("read refunds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r refundRow
		var amount, nRes, sRes, nSet, sSet, nRel, sRel, nRev, sRev int64
		var age, ended float64
		if err := rows.Scan(&r.id, &r.tx, &amount, &r.status, &r.wfStarted, &age, &ended, &nRes, &sRes, &nSet, &sSet, &nRel, &sRel,
			&nRev, &sRev); err != nil {
			return fmt.Errorf("scan refund: %w", err)
		}
		r.age, r.endedFor = seconds(age), seconds(ended)
		c.report.Refunds++
		c.report.ByStatus[r.status]++
		c.live = append(c.live, r)
		subject := "refund " + r.id.String()
		id, tx := r.id, r.tx
		if nRes != 1 || sRes != amount {
			c.addFor(RuleLedger, subject, &id, &tx, "%d RESERVE entries for %d, want one for its amount %d", nRes, sRes, amount)
		}
		var wantSettle, wantRelease, wantReverse int64
		switch r.status {
		case "SUCCEEDED":
			wantSettle = 1
		case "REVERSED":
			wantSettle, wantReverse = 1, 1
		case "DECLINED", "FAILED", "CANCELED":
			wantRelease = 1
		}
		if nSet != wantSettle || nRel != wantRelease || nRev != wantReverse ||
			(nSet == 1 && sSet != amount) || (nRel == 1 && sRel != amount) || (nRev == 1 && sRev != amount) {
			c.addFor(RuleReservation, subject, &id, &tx, "%s with %d SETTLE (%d), %d RELEASE (%d) and %d REVERSE (%d) entries, want %d, %d and %d of %d",
				r.status, nSet, sSet, nRel, sRel, nRev, sRev, wantSettle, wantRelease, wantReverse, amount)
		}
	}
	return rows.Err()
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// events: refund.created is event 1, sequences have no gaps, a final refund
// has exactly one final event of its kind and a live one none.
func (c *checker) events(ctx context.Context) error {
	rows, err := c.tx.Query(ctx, `SELECT r.id, r.status,
			coalesce(array_agg(e.type ORDER BY e.sequence) FILTER (WHERE e.id IS NOT NULL), '{}'),
			coalesce(array_agg(e.sequence ORDER BY e.sequence) FILTER (WHERE e.id IS NOT NULL), '{}')
		FROM refunds r LEFT JOIN refund_events e ON e.refund_id = r.id
		WHERE `+scoped("r")+`
		GROUP BY r.id`, c.scope()...)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var status string
		var types []string
		var seqs []int32
		if err := rows.Scan(&id, &status, &types, &seqs); err != nil {
			return fmt.Errorf("scan events: %w", err)
		}
		c.report.Events += len(types)
		subject := "refund " + id.String()
		for i, s := range seqs {
			if int(s) != i+1 {
				c.add(RuleEvents, subject, "event sequences %v are not 1..%d", seqs, len(seqs))
				break
			}
		}
		if len(types) == 0 || types[0] != "refund.created" {
			c.add(RuleEvents, subject, "first event is %v, want refund.created", types)
		}
		want := map[string]string{"SUCCEEDED": "refund.succeeded", "DECLINED": "refund.failed", "FAILED": "refund.failed",
			"CANCELED": "refund.canceled", "REVERSED": "refund.succeeded"}[status]
		finals, reversals := 0, 0
		for i, t := range types {
			switch t {
			case "refund.succeeded", "refund.failed", "refund.canceled":
				finals++
				if t != want {
					c.addFor(RuleEvents, subject, &id, nil, "%s refund has a %s event", status, t)
				}
			case "refund.reversed":
				reversals++
				if i == 0 || types[i-1] != "refund.succeeded" {
					c.addFor(RuleEvents, subject, &id, nil, "refund.reversed does not follow refund.succeeded: %v", types)
				}
			}
		}
		if (want == "" && finals != 0) || (want != "" && finals != 1) {
			c.addFor(RuleEvents, subject, &id, nil, "%s refund has %d final events %v", status, finals, types)
		}
		if wantRev := map[bool]int{true: 1}[status == "REVERSED"]; reversals != wantRev {
			c.addFor(RuleEvents, subject, &id, nil, "%s refund has %d refund.reversed events, want %d", status, reversals, wantRev)
		}
	}
	return rows.Err()
}

// webhooks: every event old enough reached every subscribed active endpoint.
func (c *checker) webhooks(ctx context.Context) error {
	if !c.opts.Webhooks {
		return nil
	}
	rows, err := c.tx.Query(ctx, `SELECT e.id, e.type, w.id,
			EXISTS (SELECT 1 FROM webhook_attempts a WHERE a.event_id = e.id AND a.endpoint_id = w.id AND a.succeeded)
		FROM refund_events e JOIN webhook_endpoints w ON w.merchant_id = e.merchant_id
		WHERE `+scoped("e")+` AND w.deleted_at IS NULL AND w.disabled_at IS NULL AND e.type = ANY(w.event_types)
			AND w.created_at <= e.created_at AND e.created_at < now() - make_interval(secs => $4)`,
		append(c.scope(), c.opts.WebhookGrace.Seconds())...)
	if err != nil {
		return fmt.Errorf("read deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ev, ep uuid.UUID
		var typ string
		var ok bool
		if err := rows.Scan(&ev, &typ, &ep, &ok); err != nil {
			return fmt.Errorf("scan delivery: %w", err)
		}
		c.report.Deliveries++
		if !ok {
			c.add(RuleWebhook, "event "+ev.String(), "%s never delivered to endpoint %s", typ, ep)
		}
	}
	return rows.Err()
}

// external asks the provider and Temporal about every refund in scope.
func (c *checker) external(ctx context.Context) error {
	if c.opts.Provider == nil && c.opts.Temporal == nil {
		return nil
	}
	work := make(chan refundRow)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []error
	for range c.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				c.provider(r)
				if err := c.workflow(ctx, r); err != nil {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
				}
			}
		}()
	}
	for _, r := range c.live {
		work <- r
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

func (c *checker) provider(r refundRow) {
	if c.opts.Provider == nil {
		return
	}
	n := c.opts.Provider.Count(r.id.String())
	c.mu.Lock()
	c.report.ProviderOK++
	c.mu.Unlock()
	subject := "refund " + r.id.String()
	switch {
	case (r.status == "SUCCEEDED" || r.status == "REVERSED") && n != 1:
		c.add(RuleProvider, subject, "%s with %d refunds at the provider, want exactly 1", r.status, n)
	case r.status == "CANCELED" && n != 0:
		c.add(RuleProvider, subject, "CANCELED (never sent) but the provider holds %d refunds", n)
	case n > 1:
		c.add(RuleProvider, subject, "%s with %d refunds at the provider, want at most 1", r.status, n)
	}
}

// workflow checks the refund's workflow, refund-<id>.
func (c *checker) workflow(ctx context.Context, r refundRow) error {
	live := r.status == "PENDING" || r.status == "PROCESSING"
	if c.opts.Temporal == nil || r.age < c.opts.WorkflowGrace || (c.opts.LiveWorkflowsOnly && !live) {
		return nil
	}
	subject := "refund " + r.id.String()
	id := "refund-" + r.id.String()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	desc, err := c.opts.Temporal.DescribeWorkflowExecution(dctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		if r.status == "CANCELED" && !r.wfStarted {
			return nil // canceled in Postgres before its workflow ever ran: nothing left to drive
		}
		if c.opts.HistoryRetention > 0 && r.endedFor > c.opts.HistoryRetention {
			return nil // final long ago: its history is past the namespace's retention
		}
		c.add(RuleWorkflow, subject, "%s for %s but workflow %s does not exist (workflow started: %t)",
			r.status, r.age.Round(time.Second), id, r.wfStarted)
		return nil
	}
	if err != nil {
		return fmt.Errorf("describe %s: %w", id, err)
	}
	c.mu.Lock()
	c.report.Workflows++
	c.mu.Unlock()
	st := desc.GetWorkflowExecutionInfo().GetStatus()
	switch {
	case live && (st == enumspb.WORKFLOW_EXECUTION_STATUS_FAILED || st == enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED ||
		st == enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT || st == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED):
		// The reconciler resumes it within its interval; past the grace it did not.
		c.add(RuleWorkflow, subject, "workflow %s ended %s while the refund is %s", id, st, r.status)
	case live && st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		c.add(RuleWorkflow, subject, "refund is %s but its workflow is %s: nothing will finish it", r.status, st)
	case !live && st == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && r.endedFor > c.opts.WorkflowGrace:
		c.add(RuleWorkflow, subject, "refund ended %s %s ago but its workflow still runs", r.status, r.endedFor.Round(time.Second))
	}
	return nil
}
