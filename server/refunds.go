package server

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/refund"
)

// Limits of the create-refund request.
const (
	maxRefundAmount   = 99_999_999
	maxReasonLen      = 500
	maxDescriptionLen = 80
	maxReferenceLen   = 40
	maxMetadataPairs  = 20
	maxMetadataKeyLen = 40
	maxMetadataValLen = 500
	maxLineItems      = 100
	defaultListLimit  = 20
	maxListLimit      = 100
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

func (req createRefundRequest) validate(merchantID uuid.UUID, idemKey string) (refund.NewRefund, error) {
	sessionID, err := optionalID(req.SessionID, "sessionId")
	if err != nil {
		return refund.NewRefund{}, err
	}
	txID, err := optionalID(req.OriginalTransactionID, "originalTransactionId")
	if err != nil {
		return refund.NewRefund{}, err
	}
	var v refund.Validator
	v.Check(sessionID != uuid.Nil || txID != uuid.Nil, "sessionId", "sessionId or originalTransactionId is required")
	in := refund.NewRefund{
		MerchantID: merchantID, SessionID: sessionID, TransactionID: txID, Reason: deref(req.Reason),
		ReasonCode: deref(req.ReasonCode), Description: deref(req.Description), Reference: deref(req.Reference),
		Metadata: req.Metadata, TargetType: refund.TargetPaymentMethod, TargetID: deref(req.TargetID), IdempotencyKey: idemKey,
	}
	if rv := req.RefundValue; rv != nil {
		if rv.Amount != nil {
			v.Check(*rv.Amount >= 1 && *rv.Amount <= maxRefundAmount, "refundValue.amount", "must be between 1 and %d minor units", maxRefundAmount)
			in.Amount = *rv.Amount
		}
		v.Check(rv.Currency == "" || currencyPattern.MatchString(rv.Currency), "refundValue.currency", "must be an ISO 4217 code like EUR")
		in.Currency = rv.Currency
	}
	v.Check(textLen(req.Reason, 0, maxReasonLen), "reason", "must be at most %d characters", maxReasonLen)
	v.Check(req.ReasonCode == nil || reasonCodes[*req.ReasonCode], "reasonCode", "must be one of REQUESTED_BY_CUSTOMER, DUPLICATE, FRAUDULENT, RETURN, OTHER")
	v.Check(textLen(req.Description, 1, maxDescriptionLen), "description", "must be 1 to %d characters", maxDescriptionLen)
	v.Check(textLen(req.Reference, 1, maxReferenceLen), "reference", "must be 1 to %d characters", maxReferenceLen)
	v.Check(len(req.Metadata) <= maxMetadataPairs, "metadata", "at most %d key-value pairs", maxMetadataPairs)
	for k, val := range req.Metadata {
		v.Check(textLen(&k, 1, maxMetadataKeyLen), "metadata."+k, "keys must be 1 to %d characters", maxMetadataKeyLen)
		v.Check(textLen(&val, 0, maxMetadataValLen), "metadata."+k, "values must be at most %d characters", maxMetadataValLen)
	}
	v.Check(len(req.LineItems) <= maxLineItems, "lineItems", "at most %d line items", maxLineItems)
	seen := map[string]bool{}
	for i, li := range req.LineItems {
		field := fmt.Sprintf("lineItems[%d]", i)
		v.Check(li.ID != "" && !seen[li.ID], field+".id", "must be set and unique")
		v.Check(li.Quantity >= 1, field+".quantity", "must be at least 1")
		seen[li.ID] = true
		in.LineItems = append(in.LineItems, refund.RefundLineItem{ID: li.ID, Quantity: li.Quantity})
	}
	if req.TargetType != nil {
		in.TargetType = *req.TargetType
	}
	switch in.TargetType {
	case refund.TargetPaymentMethod:
		v.Check(req.TargetID == nil, "targetId", "only allowed with targetType GIFT_CARD_REDEMPTION")
	case refund.TargetGiftCard:
		v.Check(in.TargetID != "", "targetId", "required with targetType GIFT_CARD_REDEMPTION")
	default:
		v.Check(false, "targetType", "must be PAYMENT_METHOD or GIFT_CARD_REDEMPTION")
	}
	return in, v.Err()
}

func (s *Server) createRefund(c echo.Context) error {
	var req createRefundRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	in, err := req.validate(principal(c).MerchantID, c.Request().Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	r, err := s.svc.Create(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, r.Object())
}

func (s *Server) getRefund(c echo.Context) error {
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	r, err := s.svc.Get(c.Request().Context(), scope(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r.Object())
}

func (s *Server) listRefunds(c echo.Context) error {
	f := refund.RefundFilter{Scope: scope(c), Status: refund.Status(c.QueryParam("status")), Limit: defaultListLimit}
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
	refunds, next, err := s.svc.List(c.Request().Context(), f)
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
	r, err := s.svc.Cancel(c.Request().Context(), scope(c), id, "merchant:"+principal(c).KeyID.String())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r.Object())
}
