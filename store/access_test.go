package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/refund"
)

// TestAPIKeys: a key is stored as its hash and prefix, listed without its
// secret, refused once revoked, and records its last use at most once a minute.
func TestAPIKeys(t *testing.T) {
	ctx := context.Background()
	st := testenv.Get(t).Store
	m, err := st.CreateMerchant(ctx, "keys-"+uuid.NewString()[:8], nil)
	if err != nil || m.CreatedAt.IsZero() {
		t.Fatalf("create merchant: %+v %v", m, err)
	}
	k, secret, err := st.InsertAPIKey(ctx, refund.NewAPIKey{MerchantID: m.ID, Name: "backend", Scopes: refund.DefaultMerchantScopes})
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 32 || k.Prefix != secret[:12] || k.CreatedAt.IsZero() || k.MerchantID != m.ID {
		t.Fatalf("key = %+v (secret %d characters)", k, len(secret))
	}
	var stored []byte
	if err := st.Pool().QueryRow(ctx, `SELECT key_hash FROM api_keys WHERE id = $1`, k.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if string(stored) == secret || len(stored) != 32 {
		t.Fatalf("stored %d bytes, want the SHA-256 of the key", len(stored))
	}

	p, err := st.Authenticate(ctx, secret)
	if err != nil || p.KeyID != k.ID || p.MerchantID != m.ID || !slices.Equal(p.Scopes, refund.DefaultMerchantScopes) {
		t.Fatalf("authenticate = %+v %v", p, err)
	}
	first := lastUsed(t, k.ID)
	if first == nil {
		t.Fatal("last use not recorded")
	}
	if _, err := st.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if again := lastUsed(t, k.ID); !again.Equal(*first) {
		t.Fatalf("last use rewritten within the minute: %s then %s", first, again)
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1`, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if later := lastUsed(t, k.ID); later == nil || time.Since(*later) > time.Minute {
		t.Fatalf("last use a minute later = %v", later)
	}

	keys, err := st.ListAPIKeys(ctx, m.ID)
	if err != nil || len(keys) != 1 || keys[0].ID != k.ID || keys[0].LastUsedAt == nil || keys[0].RevokedAt != nil {
		t.Fatalf("list = %+v %v", keys, err)
	}
	revoked, err := st.RevokeAPIKey(ctx, k.ID)
	if err != nil || revoked.RevokedAt == nil {
		t.Fatalf("revoke = %+v %v", revoked, err)
	}
	if _, err := st.Authenticate(ctx, secret); !errors.Is(err, refund.ErrNotFound) {
		t.Fatalf("revoked key authenticates: %v", err)
	}
	again, err := st.RevokeAPIKey(ctx, k.ID)
	if err != nil || !again.RevokedAt.Equal(*revoked.RevokedAt) {
		t.Fatalf("second revoke = %+v %v, want the first revocation kept", again, err)
	}
	if _, err := st.RevokeAPIKey(ctx, uuid.New()); !errors.Is(err, refund.ErrNotFound) {
		t.Fatalf("revoke unknown key: %v", err)
	}
	if _, _, err := st.InsertAPIKey(ctx, refund.NewAPIKey{MerchantID: uuid.New(), Name: "x", Scopes: refund.DefaultMerchantScopes}); !errors.Is(err, refund.ErrNotFound) {
		t.Fatalf("key of an unknown merchant: %v", err)
	}
	ops, _, err := st.InsertAPIKey(ctx, refund.NewAPIKey{Name: "ops", Scopes: []string{refund.ScopeOps}, Secret: "bf_ops_" + uuid.NewString()})
	if err != nil || ops.MerchantID != uuid.Nil {
		t.Fatalf("ops key = %+v %v", ops, err)
	}
}

func lastUsed(t *testing.T, id uuid.UUID) *time.Time {
	t.Helper()
	var at *time.Time
	if err := testenv.Get(t).Pool.QueryRow(context.Background(), `SELECT last_used_at FROM api_keys WHERE id = $1`, id).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

func TestListMerchantsPages(t *testing.T) {
	ctx := context.Background()
	st := testenv.Get(t).Store
	threshold := int64(5000)
	var made []uuid.UUID
	for range 3 {
		m, err := st.CreateMerchant(ctx, "page-"+uuid.NewString()[:8], &threshold)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, m.ID)
	}
	first, next, err := st.ListMerchants(ctx, uuid.Nil, 2)
	if err != nil || len(first) != 2 || next == uuid.Nil || first[0].ID != made[2] || first[1].ID != made[1] {
		t.Fatalf("first page = %+v next %s %v", first, next, err)
	}
	if first[0].ApprovalThreshold == nil || *first[0].ApprovalThreshold != threshold || first[0].CreatedAt.IsZero() {
		t.Fatalf("merchant = %+v", first[0])
	}
	second, _, err := st.ListMerchants(ctx, next, 1)
	if err != nil || len(second) != 1 || second[0].ID != made[0] {
		t.Fatalf("second page = %+v %v", second, err)
	}
}
