package app

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backflow/backflow/config"
)

// logLine is one JSON log record.
type logLine map[string]any

func captureLogs() (*slog.Logger, func() []logLine) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	return logger, func() []logLine {
		var lines []logLine
		dec := json.NewDecoder(&buf)
		for dec.More() {
			var l logLine
			if err := dec.Decode(&l); err != nil {
				break
			}
			lines = append(lines, l)
		}
		return lines
	}
}

func TestProviders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "providers.json")
	const fromFile = `[{"name":"cardpay-eu","type":"cardpay","baseUrl":"https://cards.example","username":"u","password":"p","callbackSecret":"s"}]`
	if err := os.WriteFile(file, []byte(fromFile), 0o600); err != nil {
		t.Fatal(err)
	}
	const fromEnv = `[{"name":"orchestra","type":"orchestra","baseUrl":"https://orchestra.example","apiKey":"k","callbackSecret":"s"},` +
		`{"name":"paydesk","type":"paydesk","baseUrl":"https://paydesk.example","apiKey":"k","pollingOnly":true}]`
	base := config.Config{PublicURL: "https://refunds.example", SandboxURL: "http://127.0.0.1:8090", ProviderTimeout: time.Second}
	with := func(mod func(*config.Config)) config.Config {
		c := base
		mod(&c)
		return c
	}

	tests := []struct {
		name      string
		cfg       config.Config
		source    string
		names     []string
		callbacks map[string]string // provider → callback URL logged
		polling   []string          // providers logged as polling only
		warns     []string          // other warnings
		wantErr   string
	}{
		{name: "sandbox by default", cfg: base, source: ProvidersFromSandbox,
			names: []string{"banktransfer", "cardpay", "momo", "orchestra", "paydesk"},
			callbacks: map[string]string{
				"cardpay": "https://refunds.example/v1/provider-callbacks/cardpay", "paydesk": "https://refunds.example/v1/provider-callbacks/paydesk",
				"orchestra": "https://refunds.example/v1/provider-callbacks/orchestra", "momo": "https://refunds.example/v1/provider-callbacks/momo",
				"banktransfer": "https://refunds.example/v1/provider-callbacks/banktransfer",
			}},
		{name: "BACKFLOW_PROVIDERS replaces the sandbox", cfg: with(func(c *config.Config) { c.ProvidersJSON = fromEnv }), source: ProvidersFromEnv,
			names:     []string{"orchestra", "paydesk"},
			callbacks: map[string]string{"orchestra": "https://refunds.example/v1/provider-callbacks/orchestra"},
			polling:   []string{"paydesk"}},
		{name: "the file wins over BACKFLOW_PROVIDERS", cfg: with(func(c *config.Config) { c.ProvidersJSON, c.ProvidersFile = fromEnv, file }),
			source: ProvidersFromFile, names: []string{"cardpay-eu"},
			callbacks: map[string]string{"cardpay-eu": "https://refunds.example/v1/provider-callbacks/cardpay-eu"},
			warns:     []string{"BACKFLOW_PROVIDERS is ignored: BACKFLOW_PROVIDERS_FILE takes precedence"}},
		{name: "stripe with its webhook secret", cfg: with(func(c *config.Config) {
			c.StripeURL, c.StripeAPIKey, c.StripeCallbackSecret = "https://api.stripe.com", "sk_test_1", "whsec_1"
			c.ProvidersFile = file
		}), source: ProvidersFromFile, names: []string{"cardpay-eu", "stripe"},
			callbacks: map[string]string{
				"cardpay-eu": "https://refunds.example/v1/provider-callbacks/cardpay-eu", "stripe": "https://refunds.example/v1/provider-callbacks/stripe",
			}},
		{name: "stripe polling only", cfg: with(func(c *config.Config) {
			c.StripeURL, c.StripeAPIKey, c.StripePollingOnly, c.ProvidersFile = "https://api.stripe.com", "sk_test_1", true, file
		}), source: ProvidersFromFile, names: []string{"cardpay-eu", "stripe"},
			callbacks: map[string]string{"cardpay-eu": "https://refunds.example/v1/provider-callbacks/cardpay-eu"},
			polling:   []string{"stripe"}},
		{name: "stripe without a webhook secret refuses to start", cfg: with(func(c *config.Config) {
			c.StripeURL, c.StripeAPIKey = "https://api.stripe.com", "sk_test_1"
		}), wantErr: "BACKFLOW_STRIPE_CALLBACK_SECRET"},
		{name: "a provider without a callback secret refuses to start", cfg: with(func(c *config.Config) {
			c.ProvidersJSON = `[{"name":"momo","type":"momo","baseUrl":"https://momo.example","apiKey":"k"}]`
		}), wantErr: `provider "momo": no callbackSecret`},
		{name: "a missing file", cfg: with(func(c *config.Config) { c.ProvidersFile = filepath.Join(dir, "none.json") }), wantErr: "read providers file"},
		{name: "a bad list names its source", cfg: with(func(c *config.Config) { c.ProvidersJSON = `{"name":"x"}` }), wantErr: "BACKFLOW_PROVIDERS: parse provider configs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logger, logs := captureLogs()
			reg, err := Providers(tt.cfg, logger)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Providers() = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Providers() = %v", err)
			}
			if got := reg.Names(); !slices.Equal(got, tt.names) {
				t.Errorf("Names() = %v, want %v", got, tt.names)
			}
			callbacks := map[string]string{}
			var polling, warns []string
			source := ""
			for _, l := range logs() {
				provider, _ := l["provider"].(string)
				switch msg := l["msg"].(string); {
				case msg == "register this callback URL at the provider":
					callbacks[provider], _ = l["callbackUrl"].(string)
				case strings.HasPrefix(msg, "provider polls only"):
					polling = append(polling, provider)
				case strings.HasPrefix(msg, "providers configured"):
					source, _ = l["source"].(string)
				case l["level"] == "WARN":
					warns = append(warns, msg)
				}
			}
			if source != tt.source {
				t.Errorf("logged source %q, want %q", source, tt.source)
			}
			if len(callbacks) != len(tt.callbacks) {
				t.Errorf("callback URLs logged %v, want %v", callbacks, tt.callbacks)
			}
			for p, url := range tt.callbacks {
				if callbacks[p] != url {
					t.Errorf("callback URL of %s logged as %q, want %q", p, callbacks[p], url)
				}
			}
			if !slices.Equal(polling, tt.polling) || !slices.Equal(warns, tt.warns) {
				t.Errorf("polling-only %v and warnings %v, want %v and %v", polling, warns, tt.polling, tt.warns)
			}
		})
	}
}
