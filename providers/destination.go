package providers

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
