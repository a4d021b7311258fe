package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/google/uuid"

	"github.com/backflow/backflow/app"
	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/store"
)

const demoMerchantName = "Demo Merchant"

// runSeed creates the demo merchant with the given keys and sample captured
// transactions, through the refunds service as the ops API does. Running it
// again adds nothing.
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
	// Merchants, keys and transactions need neither providers nor Temporal.
	svc := refunds.New(st, nil, nil, app.NewLogger(cfg.LogLevel), refunds.Hooks{})

	m, err := st.FindMerchantByName(ctx, demoMerchantName)
	if errors.Is(err, refund.ErrNotFound) {
		if m, err = svc.CreateMerchant(ctx, refund.NewMerchant{Name: demoMerchantName}); err != nil {
			return fmt.Errorf("create demo merchant: %w", err)
		}
		if err := seedTransactions(ctx, svc, m.ID); err != nil {
			return err
		}
		fmt.Println("demo merchant created:", m.ID)
	} else if err != nil {
		return fmt.Errorf("find demo merchant: %w", err)
	}
	// The demo key keeps every merchant scope, the platform's
	// transactions:write included, so scripts can register payments.
	for _, k := range []refund.NewAPIKey{
		{MerchantID: m.ID, Name: "demo", Scopes: refund.MerchantScopes, Secret: *apiKey},
		{MerchantID: uuid.Nil, Name: "ops", Scopes: []string{refund.ScopeOps}, Secret: *opsKey},
	} {
		if _, err := svc.Authenticate(ctx, k.Secret, uuid.Nil); err == nil {
			continue
		}
		if _, _, err := svc.CreateAPIKey(ctx, k); err != nil {
			return fmt.Errorf("register %s key: %w", k.Name, err)
		}
	}
	return nil
}

// seedTransactions registers one captured transaction per sandbox provider.
func seedTransactions(ctx context.Context, svc *refunds.Service, merchantID uuid.UUID) error {
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
		sid, err := svc.CreateSession(ctx, merchantID, "")
		if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		t.MerchantID, t.SessionID, t.Status = merchantID, sid, refund.TxCaptured
		tx, _, err := svc.RegisterTransaction(ctx, t)
		if err != nil {
			return fmt.Errorf("create sample transaction: %w", err)
		}
		fmt.Printf("sample transaction: %-12s %6d %s  session=%s transaction=%s\n", t.Provider, t.Amount, t.Currency, sid, tx.ID)
	}
	return nil
}
