package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/refund"
)

// maxTransactionAmount bounds a payment in minor units (10^15: far above any
// real payment, far below int64's end, so totals cannot overflow).
const maxTransactionAmount = 1_000_000_000_000_000

var methods = map[string]bool{"card": true, "mobile_money": true, "bank_transfer": true, "gift_card": true, "wallet": true}

func (s *Server) createSession(c echo.Context) error {
	id, err := s.svc.CreateSession(c.Request().Context(), principal(c).MerchantID, c.Request().Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]uuid.UUID{"sessionId": id})
}

type createTransactionRequest struct {
	SessionID           string                    `json:"sessionId"`
	Provider            string                    `json:"provider"`
	Method              string                    `json:"method"`
	Amount              int64                     `json:"amount"`
	Currency            string                    `json:"currency"`
	Status              refund.TxStatus           `json:"status"`
	ProviderReference   string                    `json:"providerReference"`
	LineItems           []lineItemRequest         `json:"lineItems"`
	GiftCardRedemptions []redemptionRequest       `json:"giftCardRedemptions"`
	PayoutDestination   *refund.PayoutDestination `json:"payoutDestination"`
}

type lineItemRequest struct {
	ID       string `json:"id"`
	Amount   int64  `json:"amount"`
	Quantity int64  `json:"quantity"`
}

type redemptionRequest struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
}

func (s *Server) createTransaction(c echo.Context) error {
	var req createTransactionRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	sessionID, err := parseID(req.SessionID, "sessionId")
	if err != nil {
		return err
	}
	var v refund.Validator
	v.Check(req.Provider != "", "provider", "required")
	v.Check(methods[req.Method], "method", "must be card, mobile_money, bank_transfer, gift_card or wallet")
	v.Check(req.Amount >= 1 && req.Amount <= maxTransactionAmount, "amount", "must be 1..%d minor units", maxTransactionAmount)
	v.Check(currencyPattern.MatchString(req.Currency), "currency", "must be an ISO 4217 code like EUR")
	v.Check(req.Status == refund.TxCaptured || req.Status == refund.TxAuthorized, "status", "must be CAPTURED or AUTHORIZED")
	v.Check(req.ProviderReference != "", "providerReference", "required")
	var linesTotal, giftTotal int64
	var lines []refund.LineItem
	var redemptions []refund.GiftCardRedemption
	ids := map[string]bool{}
	for i, li := range req.LineItems {
		f := fmt.Sprintf("lineItems[%d]", i)
		v.Check(li.ID != "" && !ids[li.ID], f+".id", "must be set and unique")
		valid := li.Amount >= 1 && li.Amount <= maxTransactionAmount && li.Quantity >= 1 && li.Quantity <= maxTransactionAmount/li.Amount
		v.Check(valid, f, "amount and quantity must be positive, their product at most %d", maxTransactionAmount)
		ids[li.ID] = true
		if valid { // each product ≤ 10^15 and a body holds at most ~1,000 lines: no overflow
			linesTotal += li.Amount * li.Quantity
		}
		lines = append(lines, refund.LineItem{ID: li.ID, Amount: li.Amount, Quantity: li.Quantity})
	}
	v.Check(linesTotal <= req.Amount, "lineItems", "line items total %d exceeds the amount", linesTotal)
	ids = map[string]bool{}
	for i, g := range req.GiftCardRedemptions {
		f := fmt.Sprintf("giftCardRedemptions[%d]", i)
		v.Check(g.ID != "" && !ids[g.ID], f+".id", "must be set and unique")
		v.Check(g.Amount >= 1 && g.Amount <= maxTransactionAmount, f+".amount", "must be 1..%d", maxTransactionAmount)
		ids[g.ID] = true
		giftTotal += min(max(g.Amount, 0), maxTransactionAmount)
		redemptions = append(redemptions, refund.GiftCardRedemption{ID: g.ID, Amount: g.Amount})
	}
	v.Check(giftTotal <= req.Amount, "giftCardRedemptions", "redemptions total %d exceeds the amount", giftTotal)
	if d := req.PayoutDestination; d != nil {
		v.Check(d.Type == "mobile_money" || d.Type == "bank_account", "payoutDestination.type", "must be mobile_money or bank_account")
	}
	if err := v.Err(); err != nil {
		return err
	}
	t, created, err := s.svc.RegisterTransaction(c.Request().Context(), refund.NewTransaction{
		MerchantID: principal(c).MerchantID, SessionID: sessionID, Provider: req.Provider, Method: req.Method,
		Amount: req.Amount, Currency: req.Currency, Status: req.Status, ProviderReference: req.ProviderReference,
		PayoutDestination: req.PayoutDestination, LineItems: lines, GiftCardRedemptions: redemptions,
	})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK // the same payment registered again: its transaction, once
	}
	return c.JSON(status, transactionObject(t))
}

func (s *Server) getTransaction(c echo.Context) error {
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	t, err := s.svc.GetTransaction(c.Request().Context(), scope(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, transactionObject(t))
}

// TransactionObject is the original transaction as the API shows it.
type TransactionObject struct {
	TransactionID       uuid.UUID                   `json:"transactionId"`
	SessionID           uuid.UUID                   `json:"sessionId"`
	Provider            string                      `json:"provider"`
	Method              string                      `json:"method"`
	Amount              int64                       `json:"amount"`
	Currency            string                      `json:"currency"`
	Status              refund.TxStatus             `json:"status"`
	ProviderReference   string                      `json:"providerReference"`
	RefundedAmount      int64                       `json:"refundedAmount"`
	ReservedAmount      int64                       `json:"reservedAmount"`
	RefundableAmount    int64                       `json:"refundableAmount"`
	LineItems           []refund.LineItem           `json:"lineItems"`
	GiftCardRedemptions []refund.GiftCardRedemption `json:"giftCardRedemptions"`
	PayoutDestination   *refund.PayoutDestination   `json:"payoutDestination,omitempty"`
	CreatedAt           time.Time                   `json:"createdAt"`
	UpdatedAt           time.Time                   `json:"updatedAt"`
}

func transactionObject(t refund.Transaction) TransactionObject {
	o := TransactionObject{
		TransactionID: t.ID, SessionID: t.SessionID, Provider: t.Provider, Method: t.Method, Amount: t.Amount,
		Currency: t.Currency, Status: t.Status, ProviderReference: t.ProviderReference, RefundedAmount: t.RefundedAmount,
		ReservedAmount: t.ReservedAmount, RefundableAmount: t.Refundable(), LineItems: t.LineItems,
		GiftCardRedemptions: t.GiftCardRedemptions, PayoutDestination: t.PayoutDestination.Masked(),
		CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(),
	}
	if o.LineItems == nil {
		o.LineItems = []refund.LineItem{}
	}
	if o.GiftCardRedemptions == nil {
		o.GiftCardRedemptions = []refund.GiftCardRedemption{}
	}
	if t.Status == refund.TxAuthorized || t.Status == refund.TxVoided {
		o.RefundableAmount = 0
	}
	return o
}
