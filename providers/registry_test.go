package providers_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backflow/backflow/providers"
)

func TestSandboxRegistry(t *testing.T) {
	t.Parallel()
	reg, err := providers.NewRegistry(providers.SandboxConfigs("http://sandbox.test/"), nil)
	if err != nil {
		t.Fatalf("NewRegistry() = %v", err)
	}
	wantNames := []string{"banktransfer", "cardpay", "momo", "orchestra", "paydesk"}
	if got := reg.Names(); !slices.Equal(got, wantNames) {
		t.Fatalf("Names() = %v, want %v", got, wantNames)
	}
	wantCaps := map[string]providers.Capabilities{
		"cardpay":      {RefundAPI: true, PartialRefunds: true},
		"paydesk":      {RefundAPI: true, PartialRefunds: true, AsyncOutcome: true},
		"orchestra":    {RefundAPI: true, PartialRefunds: true, AsyncOutcome: true, GiftCards: true},
		"momo":         {Payouts: true, AsyncOutcome: true},
		"banktransfer": {Payouts: true, AsyncOutcome: true},
	}
	for name, want := range wantCaps {
		c, ok := reg.Get(name)
		if !ok {
			t.Fatalf("Get(%q) found nothing", name)
		}
		if c.Name() != name || c.Capabilities() != want {
			t.Errorf("%s: Name() = %q, Capabilities() = %+v, want %+v", name, c.Name(), c.Capabilities(), want)
		}
	}
	if _, ok := reg.Get("stripe"); ok {
		t.Error("the sandbox registry has a stripe connector")
	}
}

func TestNewRegistryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfgs    []providers.Config
		wantErr string
	}{
		{"unknown type", []providers.Config{{Name: "x", Type: "paypal", BaseURL: "http://x"}}, `unknown type "paypal"`},
		{"duplicate name", []providers.Config{
			{Name: "s", Type: "stripe", APIKey: "sk_test_1", CallbackSecret: "whsec_1"},
			{Name: "s", Type: "stripe", APIKey: "sk_test_2", CallbackSecret: "whsec_2"},
		}, "configured twice"},
		{"missing credentials", []providers.Config{{Name: "c", Type: "cardpay", BaseURL: "http://x", Username: "u", CallbackSecret: "c"}}, "missing password"},
		{"missing base URL", []providers.Config{{Name: "m", Type: "momo", APIKey: "k", CallbackSecret: "c"}}, "missing baseUrl"},
		{"relative base URL", []providers.Config{{Name: "m", Type: "momo", BaseURL: "sandbox:8080", APIKey: "k", CallbackSecret: "c"}}, "not an absolute"},
		{"no name", []providers.Config{{Type: "momo", BaseURL: "http://x", APIKey: "k"}}, "has no name"},
		{"no callback secret", []providers.Config{{Name: "s", Type: "stripe", APIKey: "sk_test_1"}}, "no callbackSecret"},
		{"polling-only with a secret", []providers.Config{{Name: "s", Type: "stripe", APIKey: "sk_test_1", CallbackSecret: "whsec_1", PollingOnly: true}}, "choose one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := providers.NewRegistry(tt.cfgs, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewRegistry() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestStripeDefaultsToStripeAPI(t *testing.T) {
	t.Parallel()
	reg, err := providers.NewRegistry([]providers.Config{{Name: "stripe", Type: "stripe", APIKey: "sk_test_1", CallbackSecret: "whsec_1"}}, nil)
	if err != nil {
		t.Fatalf("NewRegistry() = %v", err)
	}
	if c, ok := reg.Get("stripe"); !ok || !c.Capabilities().RefundAPI {
		t.Fatalf("stripe connector missing or without refund API")
	}
}

func TestParseConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{name: "blank", in: "  ", want: 0},
		{name: "two", in: `[{"name":"cardpay","type":"cardpay","baseUrl":"http://s","username":"u","password":"p","callbackSecret":"c"},
			{"name":"stripe","type":"stripe","apiKey":"sk_test_1","pollingOnly":true}]`, want: 2},
		{name: "unknown field", in: `[{"name":"x","type":"momo","api_key":"k"}]`, wantErr: "unknown field"},
		{name: "no type", in: `[{"name":"x"}]`, wantErr: "no type"},
		{name: "duplicate", in: `[{"name":"x","type":"momo"},{"name":"x","type":"momo"}]`, wantErr: "twice"},
		{name: "not an array", in: `{"name":"x"}`, wantErr: "parse provider configs"},
		{name: "trailing data", in: `[] []`, wantErr: "trailing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := providers.ParseConfigs(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseConfigs() = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("ParseConfigs() = %d configs, %v; want %d", len(got), err, tt.want)
			}
		})
	}
}

func TestConfigMasksSecrets(t *testing.T) {
	t.Parallel()
	cfg := providers.SandboxConfigs("http://s")[0]
	for _, s := range []string{cfg.String(), cfg.LogValue().String()} {
		if strings.Contains(s, cfg.Password) || strings.Contains(s, cfg.CallbackSecret) {
			t.Errorf("secret leaked in %q", s)
		}
	}
}

// TestPollingOnly: a provider declared polling-only starts without a callback
// secret and rejects every callback as unverifiable.
func TestPollingOnly(t *testing.T) {
	t.Parallel()
	reg, err := providers.NewRegistry([]providers.Config{{Name: "stripe", Type: "stripe", APIKey: "sk_test_1", PollingOnly: true}}, nil)
	if err != nil {
		t.Fatalf("NewRegistry() = %v", err)
	}
	c, _ := reg.Get("stripe")
	body := []byte(`{"type":"refund.updated","data":{"object":{"id":"re_1","object":"refund","status":"succeeded"}}}`)
	header := http.Header{providers.StripeSignatureHeader: {providers.SignCallback("", time.Now(), body)}}
	if _, err := c.ParseCallback(header, body); !errors.Is(err, providers.ErrInvalidSignature) {
		t.Fatalf("ParseCallback() = %v, want ErrInvalidSignature", err)
	}
}

func TestCallbackPath(t *testing.T) {
	t.Parallel()
	if got := providers.CallbackPath("paydesk-eu"); got != "/v1/provider-callbacks/paydesk-eu" {
		t.Errorf("CallbackPath() = %q", got)
	}
}
