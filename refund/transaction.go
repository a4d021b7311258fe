package refund

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// LineItem is a line of the original payment; Amount is the unit amount.
type LineItem struct {
	ID               string `json:"id"`
	Amount           int64  `json:"amount"`
	Quantity         int64  `json:"quantity"`
	RefundedQuantity int64  `json:"refundedQuantity"`
	ReservedQuantity int64  `json:"reservedQuantity"`
}

// GiftCardRedemption is a gift-card part of the original payment.
type GiftCardRedemption struct {
	ID             string `json:"id"`
	Amount         int64  `json:"amount"`
	RefundedAmount int64  `json:"refundedAmount"`
	ReservedAmount int64  `json:"reservedAmount"`
}

// Transaction is an original payment and its refundable balance.
type Transaction struct {
	ID                uuid.UUID
	MerchantID        uuid.UUID
	SessionID         uuid.UUID
	Provider          string
	Method            string // the payment method: card, mobile_money, ...
	Amount            int64
	Currency          string
	Status            TxStatus
	ProviderReference string
	PayoutDestination *PayoutDestination
	RefundedAmount    int64
	ReservedAmount    int64
	// Totals of the gift-card redemptions (kept by the database).
	GiftCardAmount      int64
	GiftCardRefunded    int64
	GiftCardReserved    int64
	LineItems           []LineItem
	GiftCardRedemptions []GiftCardRedemption
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Refundable is captured − (refunded + reserved).
func (t Transaction) Refundable() int64 { return t.Amount - t.RefundedAmount - t.ReservedAmount }

// PaymentMethodRefundable is what a refund to the payment method may still
// take: captured less gift-card redemptions, less what the payment method
// already got back or has reserved.
func (t Transaction) PaymentMethodRefundable() int64 {
	return (t.Amount - t.GiftCardAmount) - (t.RefundedAmount - t.GiftCardRefunded) - (t.ReservedAmount - t.GiftCardReserved)
}

// PayoutDestination is where a payout refund sends the money back.
type PayoutDestination struct {
	Type          string `json:"type"` // mobile_money | bank_account
	MobileNumber  string `json:"mobileNumber,omitempty"`
	Network       string `json:"network,omitempty"`
	AccountHolder string `json:"accountHolder,omitempty"`
	IBAN          string `json:"iban,omitempty"`
	AccountNumber string `json:"accountNumber,omitempty"`
	BankCode      string `json:"bankCode,omitempty"`
	Country       string `json:"country,omitempty"`
}

// Complete reports whether the destination holds enough to send a payout:
// a mobile-money number, or full bank account details.
func (d PayoutDestination) Complete() bool {
	switch d.Type {
	case "mobile_money":
		return d.MobileNumber != ""
	case "bank_account":
		return d.AccountHolder != "" && (d.IBAN != "" || (d.AccountNumber != "" && d.BankCode != ""))
	}
	return false
}

// Masked returns a copy safe to show over the API: account numbers and phone
// numbers keep only their last four characters.
func (d *PayoutDestination) Masked() *PayoutDestination {
	if d == nil {
		return nil
	}
	m := *d
	m.MobileNumber, m.IBAN, m.AccountNumber = lastFour(d.MobileNumber), lastFour(d.IBAN), lastFour(d.AccountNumber)
	return &m
}

func lastFour(s string) string {
	if len(s) <= 4 {
		return s
	}
	return strings.Repeat("*", len(s)-4) + s[len(s)-4:]
}
