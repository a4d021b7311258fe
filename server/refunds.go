package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/workflows"
)

// Limits of the create-refund request.
const (
	maxRefundAmount    = 99_999_999
	maxReasonLen       = 500
	maxDescriptionLen  = 80
	maxReferenceLen    = 40
	maxMetadataPairs   = 20
	maxMetadataKeyLen  = 40
	maxMetadataValLen  = 500
	maxLineItems       = 100
	defaultListLimit   = 20
	maxListLimit       = 100
	cancelWaitDeadline = 10 * time.Second
)

var (
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	reasonCodes     = map[string]bool{"REQUESTED_BY_CUSTOMER": true, "DUPLICATE": true, "FRAUDULENT": true, "RETURN": true, "OTHER": true}
)

type moneyInput struct {
	Amount   *int64 `json:"amount"`
	Currency string `json:"currency"`
}

type lineItemInput struct {
	ID       string `json:"id"`
	Quantity int64  `json:"quantity"`
}

type createRefundRequest struct {
	SessionID             *string           `json:"sessionId"`
	OriginalTransactionID *string           `json:"originalTransactionId"`
	RefundValue           *moneyInput       `json:"refundValue"`
	Reason                *string           `json:"reason"`
	ReasonCode            *string           `json:"reasonCode"`
	Description           *string           `json:"description"`
	Reference             *string           `json:"reference"`
	Metadata              map[string]string `json:"metadata"`
	LineItems             []lineItemInput   `json:"lineItems"`
	TargetType            *string           `json:"targetType"`
	TargetID              *string           `json:"targetId"`
}

// validator collects field errors so a client sees them all at once.
type validator []FieldError

func (v *validator) check(ok bool, field, format string, args ...any) {
	if !ok {
		*v = append(*v, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
}

func (v validator) err() error {
	if len(v) == 0 {
		return nil
	}
	return problem(refund.CodeValidation, "the request has invalid fields", v...)
}

func optionalID(raw *string, field string) (uuid.UUID, error) {
	if raw == nil {
		return uuid.Nil, nil
	}
	return parseID(*raw, field)
}

// textLen checks a text field's length in characters; NUL, which Postgres
// cannot store, is refused with it.
func textLen(s *string, min, max int) bool {
	if s == nil {
		return true
	}
	n := utf8.RuneCountInString(*s)
	return utf8.ValidString(*s) && !strings.ContainsRune(*s, 0) && n >= min && n <= max
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (req createRefundRequest) validate(merchantID uuid.UUID, idemKey string) (store.NewRefund, error) {
	sessionID, err := optionalID(req.SessionID, "sessionId")
	if err != nil {
		return store.NewRefund{}, err
	}
	txID, err := optionalID(req.OriginalTransactionID, "originalTransactionId")
	if err != nil {
		return store.NewRefund{}, err
	}
	var v validator
	v.check(sessionID != uuid.Nil || txID != uuid.Nil, "sessionId", "sessionId or originalTransactionId is required")
	in := store.NewRefund{
		MerchantID: merchantID, SessionID: sessionID, TransactionID: txID, Reason: deref(req.Reason),
		ReasonCode: deref(req.ReasonCode), Description: deref(req.Description), Reference: deref(req.Reference),
		Metadata: req.Metadata, TargetType: refund.TargetPaymentMethod, TargetID: deref(req.TargetID), IdempotencyKey: idemKey,
	}
	if rv := req.RefundValue; rv != nil {
		if rv.Amount != nil {
			v.check(*rv.Amount >= 1 && *rv.Amount <= maxRefundAmount, "refundValue.amount", "must be between 1 and %d minor units", maxRefundAmount)
			in.Amount = *rv.Amount
		}
		v.check(rv.Currency == "" || currencyPattern.MatchString(rv.Currency), "refundValue.currency", "must be an ISO 4217 code like EUR")
		in.Currency = rv.Currency
	}
	v.check(textLen(req.Reason, 0, maxReasonLen), "reason", "must be at most %d characters", maxReasonLen)
	v.check(req.ReasonCode == nil || reasonCodes[*req.ReasonCode], "reasonCode", "must be one of REQUESTED_BY_CUSTOMER, DUPLICATE, FRAUDULENT, RETURN, OTHER")
	v.check(textLen(req.Description, 1, maxDescriptionLen), "description", "must be 1 to %d characters", maxDescriptionLen)
	v.check(textLen(req.Reference, 1, maxReferenceLen), "reference", "must be 1 to %d characters", maxReferenceLen)
	v.check(len(req.Metadata) <= maxMetadataPairs, "metadata", "at most %d key-value pairs", maxMetadataPairs)
	for k, val := range req.Metadata {
		v.check(textLen(&k, 1, maxMetadataKeyLen), "metadata."+k, "keys must be 1 to %d characters", maxMetadataKeyLen)
		v.check(textLen(&val, 0, maxMetadataValLen), "metadata."+k, "values must be at most %d characters", maxMetadataValLen)
	}
	v.check(len(req.LineItems) <= maxLineItems, "lineItems", "at most %d line items", maxLineItems)
	seen := map[string]bool{}
	for i, li := range req.LineItems {
		field := fmt.Sprintf("lineItems[%d]", i)
		v.check(li.ID != "" && !seen[li.ID], field+".id", "must be set and unique")
		v.check(li.Quantity >= 1, field+".quantity", "must be at least 1")
		seen[li.ID] = true
		in.LineItems = append(in.LineItems, refund.RefundLineItem{ID: li.ID, Quantity: li.Quantity})
	}
	if req.TargetType != nil {
		in.TargetType = *req.TargetType
	}
	switch in.TargetType {
	case refund.TargetPaymentMethod:
		v.check(req.TargetID == nil, "targetId", "only allowed with targetType GIFT_CARD_REDEMPTION")
	case refund.TargetGiftCard:
		v.check(in.TargetID != "", "targetId", "required with targetType GIFT_CARD_REDEMPTION")
	default:
		v.check(false, "targetType", "must be PAYMENT_METHOD or GIFT_CARD_REDEMPTION")
	}
	return in, v.err()
}

func (s *Server) createRefund(c echo.Context) error {
	var req createRefundRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	p := principal(c)
	idemKey := c.Request().Header.Get("Idempotency-Key")
	in, err := req.validate(p.MerchantID, idemKey)
	if err != nil {
		return err
	}
	in.Route = s.route
	ctx := c.Request().Context()
	r, err := s.store.CreateRefund(ctx, in)
	created := err == nil
	if errors.Is(err, refund.ErrDuplicate) && idemKey != "" {
		// A retry of a request whose response was lost: answer with its refund.
		r, err = s.store.GetRefundByIdempotencyKey(ctx, p.MerchantID, idemKey)
	}
	if err != nil {
		return err
	}
	if created && s.onCreated != nil {
		s.onCreated(r)
	}
	s.startWorkflow(ctx, r)
	return c.JSON(http.StatusAccepted, r.Object())
}

// startWorkflow starts the refund's workflow. A failure is logged, not
// returned: the refund and its reservation are committed, and the reconciler
// starts any refund whose workflow did not report in.
func (s *Server) startWorkflow(ctx context.Context, r refund.Refund) {
	_, err := s.temporal.ExecuteWorkflow(ctx, workflows.StartOptions(r, s.taskQueue), workflows.RefundWorkflowName,
		workflows.RefundInput{RefundID: r.ID})
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &already) {
		s.log.ErrorContext(ctx, "start refund workflow; the reconciler will retry", "refundId", r.ID,
			"workflowId", workflows.RefundWorkflowID(r.ID), "merchantId", r.MerchantID, "error", err)
	}
}

// route picks the refund path from the provider's capabilities.
func (s *Server) route(t refund.Transaction, targetType string) (refund.Method, error) {
	conn, ok := s.providers.Get(t.Provider)
	if !ok {
		return "", &refund.RuleError{Code: refund.CodeMethodUnavailable, Message: fmt.Sprintf("provider %q is not configured", t.Provider)}
	}
	caps := conn.Capabilities()
	if targetType == refund.TargetGiftCard && !caps.GiftCards {
		return "", &refund.RuleError{Code: refund.CodeTargetUnsupported,
			Message: fmt.Sprintf("provider %q cannot refund to a gift card: refund to the payment method instead", t.Provider)}
	}
	if caps.RefundAPI {
		return refund.MethodProviderRefund, nil
	}
	if caps.Payouts && t.PayoutDestination != nil && t.PayoutDestination.Complete() {
		return refund.MethodPayoutRefund, nil
	}
	return "", &refund.RuleError{Code: refund.CodeMethodUnavailable,
		Message: fmt.Sprintf("provider %q has no refund API and the transaction holds no complete payout destination", t.Provider)}
}

func (s *Server) getRefund(c echo.Context) error {
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	r, err := s.store.GetRefund(c.Request().Context(), principal(c).MerchantID, id)
	if errors.Is(err, refund.ErrNotFound) {
		return notFound(refund.CodeRefundNotFound)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r.Object())
}

func (s *Server) listRefunds(c echo.Context) error {
	f := store.RefundFilter{MerchantID: principal(c).MerchantID, Status: refund.Status(c.QueryParam("status")), Limit: defaultListLimit}
	var err error
	if err = queryIDs(c, map[string]*uuid.UUID{"sessionId": &f.SessionID, "originalTransactionId": &f.TransactionID, "cursor": &f.After}); err != nil {
		return err
	}
	for field, dst := range map[string]*time.Time{"createdFrom": &f.CreatedFrom, "createdTo": &f.CreatedTo} {
		if raw := c.QueryParam(field); raw != "" {
			if *dst, err = time.Parse(time.RFC3339, raw); err != nil {
				return problem(CodeMalformed, field+" must be an RFC 3339 timestamp", FieldError{Field: field, Message: "must be RFC 3339"})
			}
		}
	}
	if f.Limit, err = queryLimit(c, defaultListLimit, maxListLimit); err != nil {
		return err
	}
	if f.Status != "" && !f.Status.Valid() {
		return problem(CodeMalformed, "unknown status "+string(f.Status), FieldError{Field: "status", Message: "unknown status"})
	}
	refunds, next, err := s.store.ListRefunds(c.Request().Context(), f)
	if err != nil {
		return err
	}
	page := refundPage{Data: make([]refund.Object, 0, len(refunds))}
	for _, r := range refunds {
		page.Data = append(page.Data, r.Object())
	}
	if next != uuid.Nil {
		page.NextCursor = next.String()
	}
	return c.JSON(http.StatusOK, page)
}

type refundPage struct {
	Data       []refund.Object `json:"data"`
	NextCursor string          `json:"nextCursor,omitempty"`
}

func (s *Server) cancelRefund(c echo.Context) error {
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	r, err := s.store.GetRefund(ctx, principal(c).MerchantID, id)
	if errors.Is(err, refund.ErrNotFound) {
		return notFound(refund.CodeRefundNotFound)
	}
	if err != nil {
		return err
	}
	if r, err = s.CancelRefund(ctx, r, "merchant:"+principal(c).KeyID.String()); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r.Object())
}

// CancelRefund cancels a refund not yet sent, through its workflow so the
// workflow and the database agree; a refund whose workflow never started is
// canceled in the database directly.
func (s *Server) CancelRefund(ctx context.Context, r refund.Refund, actor string) (refund.Refund, error) {
	if r.Status != refund.StatusPending {
		return r, &refund.RuleError{Code: refund.CodeNotCancelable, Message: fmt.Sprintf("refund is %s: only a PENDING refund not yet sent can be canceled", r.Status)}
	}
	ctx, cancel := context.WithTimeout(ctx, cancelWaitDeadline)
	defer cancel()
	handle, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.RefundWorkflowID(r.ID), UpdateName: workflows.UpdateCancel,
		Args: []any{workflows.Decision{Actor: actor}}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = handle.Get(ctx, nil)
	}
	var notFoundErr *serviceerror.NotFound
	var rejected *temporal.ApplicationError
	switch {
	case errors.As(err, &notFoundErr):
		if _, _, err := s.store.Finalize(ctx, r.ID, refund.Outcome{Status: refund.StatusCanceled, FailureCode: "canceled",
			FailureMessage: "canceled before it was sent"}); err != nil {
			return r, err
		}
	case errors.As(err, &rejected):
		s.log.InfoContext(ctx, "cancel refused by workflow", "refundId", r.ID, "workflowId", workflows.RefundWorkflowID(r.ID),
			"merchantId", r.MerchantID, "error", err)
		return r, &refund.RuleError{Code: refund.CodeNotCancelable, Message: "the refund was already sent to the provider and can no longer be canceled"}
	case err != nil:
		return r, problem(CodeUnavailable, "could not reach the refund's workflow; retry the cancel")
	}
	r, err = s.store.GetRefund(ctx, uuid.Nil, r.ID)
	if err == nil && r.Status != refund.StatusCanceled {
		return r, &refund.RuleError{Code: refund.CodeNotCancelable, Message: fmt.Sprintf("refund is %s: it can no longer be canceled", r.Status)}
	}
	return r, err
}
