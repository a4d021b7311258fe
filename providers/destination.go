package providers

import "strings"

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
