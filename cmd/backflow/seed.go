package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/google/uuid"

	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/store"
)

const demoMerchantName = "Demo Merchant"

// runSeed creates the demo merchant with the given keys and sample captured
// transactions. Running it again adds nothing.
func runSeed(ctx context.Context, cfg config.Config, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	apiKey := fs.String("api-key", "", "demo merchant API key to register (all merchant scopes)")
	opsKey := fs.String("ops-key", "", "ops API key to register")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *apiKey == "" || *opsKey == "" {
		return errors.New("seed: --api-key and --ops-key are required")
	}
	pool, err := store.Connect(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)

	m, err := st.FindMerchantByName(ctx, demoMerchantName)
	if errors.Is(err, refund.ErrNotFound) {
		if m, err = st.CreateMerchant(ctx, demoMerchantName, nil); err != nil {
			return fmt.Errorf("create demo merchant: %w", err)
		}
		if err := seedTransactions(ctx, st, m.ID); err != nil {
			return err
		}
		fmt.Println("demo merchant created:", m.ID)
	} else if err != nil {
		return fmt.Errorf("find demo merchant: %w", err)
	}
	for _, k := range []struct {
		merchant uuid.UUID
		name     string
		key      string
		scopes   []string
	}{
		{m.ID, "demo", *apiKey, refund.MerchantScopes},
		{uuid.Nil, "ops", *opsKey, []string{refund.ScopeOps}},
	} {
		if _, err := st.Authenticate(ctx, k.key); err == nil {
			continue
		}
		if err := st.InsertAPIKey(ctx, k.merchant, k.name, k.key, k.scopes); err != nil {
			return fmt.Errorf("register %s key: %w", k.name, err)
		}
	}
	return nil
}

// seedTransactions registers one captured transaction per sandbox provider.
func seedTransactions(ctx context.Context, st *store.Store, merchantID uuid.UUID) error {
	samples := []refund.NewTransaction{
		{Provider: "cardpay", Method: "card", Amount: 10000, Currency: "EUR", ProviderReference: "card_demo_1"},
		{Provider: "paydesk", Method: "card", Amount: 25000, Currency: "EUR", ProviderReference: "pay_demo_1",
			LineItems: []refund.LineItem{{ID: "sku-1", Amount: 5000, Quantity: 3}, {ID: "sku-2", Amount: 10000, Quantity: 1}}},
		{Provider: "orchestra", Method: "card", Amount: 15000, Currency: "USD", ProviderReference: "orch_demo_1",
			GiftCardRedemptions: []refund.GiftCardRedemption{{ID: "gc-1", Amount: 5000}}},
		{Provider: "momo", Method: "mobile_money", Amount: 50000, Currency: "KES", ProviderReference: "momo_demo_1",
			PayoutDestination: &refund.PayoutDestination{Type: "mobile_money", MobileNumber: "+254700000001", Network: "MPESA"}},
		{Provider: "banktransfer", Method: "bank_transfer", Amount: 80000, Currency: "EUR", ProviderReference: "bank_demo_1",
			PayoutDestination: &refund.PayoutDestination{Type: "bank_account", AccountHolder: "Ada Lovelace", IBAN: "DE89370400440532013000", Country: "DE"}},
	}
	for _, t := range samples {
		sid, err := st.CreateSession(ctx, merchantID, "")
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		t.MerchantID, t.SessionID, t.Status = merchantID, sid, refund.TxCaptured
		tx, _, err := st.CreateTransaction(ctx, t)
		if err != nil {
			return fmt.Errorf("create sample transaction: %w", err)
		}
		fmt.Printf("sample transaction: %-12s %6d %s  session=%s transaction=%s\n", t.Provider, t.Amount, t.Currency, sid, tx.ID)
	}
	return nil
}
