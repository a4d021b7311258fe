package server_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/server"
)

// TestHTTPBasic: the key as user name with an empty password (Stripe's
// convention), or the key id as user name and the key as password (001_*);
// any other pair is 401.
func TestHTTPBasic(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	p, err := s.Store.Authenticate(context.Background(), s.MerchantKey)
	if err != nil {
		t.Fatal(err)
	}
	keyID := p.KeyID.String()
	_, otherKey := s.NewMerchantKey(t, nil)
	basic := func(user, password string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"key, empty password", basic(s.MerchantKey, ""), http.StatusOK},
		{"key id and key", basic(keyID, s.MerchantKey), http.StatusOK},
		{"key with a password", basic(s.MerchantKey, "secret"), http.StatusUnauthorized},
		{"key as both", basic(s.MerchantKey, s.MerchantKey), http.StatusUnauthorized},
		{"key id, empty password", basic(keyID, ""), http.StatusUnauthorized},
		{"key id of another key", basic(keyID, otherKey), http.StatusUnauthorized},
		{"another key id", basic(uuid.NewString(), s.MerchantKey), http.StatusUnauthorized},
		{"unknown key", basic("bf_unknown", ""), http.StatusUnauthorized},
		{"empty user", basic("", s.MerchantKey), http.StatusUnauthorized},
		{"not base64", "Basic %%%", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.DoWithKey(t, "", "GET", "/v1/refunds", nil, "Authorization", tc.auth)
			if r.Status != tc.want {
				t.Fatalf("%s: %d %s, want %d", tc.name, r.Status, r.Body, tc.want)
			}
			if tc.want == http.StatusUnauthorized {
				rig.AssertProblem(t, r, http.StatusUnauthorized, server.CodeUnauthorized)
			}
		})
	}
}
