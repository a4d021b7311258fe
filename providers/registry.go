package providers

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config configures one provider connector.
type Config struct {
	Name     string `json:"name"` // used in callback URLs and on transactions
	Type     string `json:"type"` // connector type: cardpay, paydesk, orchestra, momo, banktransfer, stripe
	BaseURL  string `json:"baseUrl"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	APIKey   string `json:"apiKey,omitempty"`
	// CallbackSecret verifies the provider's signed callbacks (Stripe: the
	// endpoint's whsec_ secret). Required unless PollingOnly.
	CallbackSecret string `json:"callbackSecret,omitempty"`
	// PollingOnly declares that the provider's callbacks are not used: every
	// callback is rejected and outcomes are learnt by status checks only.
	PollingOnly bool `json:"pollingOnly,omitempty"`
}

// String prints the config with its secrets masked.
func (c Config) String() string {
	return fmt.Sprintf("{name=%s type=%s baseUrl=%s username=%s password=%s apiKey=%s callbackSecret=%s pollingOnly=%t}",
		c.Name, c.Type, c.BaseURL, c.Username, mask(c.Password), mask(c.APIKey), mask(c.CallbackSecret), c.PollingOnly)
}

// LogValue logs the config with its secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name), slog.String("type", c.Type), slog.String("baseUrl", c.BaseURL),
		slog.String("username", c.Username), slog.String("password", mask(c.Password)),
		slog.String("apiKey", mask(c.APIKey)), slog.String("callbackSecret", mask(c.CallbackSecret)),
		slog.Bool("pollingOnly", c.PollingOnly),
	)
}

// CallbackPath is where Backflow's API receives the callbacks of the provider
// configured as name: register <BACKFLOW_PUBLIC_URL> + CallbackPath(name) at
// the provider.
func CallbackPath(name string) string { return "/v1/provider-callbacks/" + url.PathEscape(name) }

// checkCallbacks refuses a provider whose callbacks could not be verified,
// unless it is declared polling-only.
func checkCallbacks(cfg Config) error {
	switch {
	case cfg.CallbackSecret == "" && !cfg.PollingOnly:
		return errors.New("no callbackSecret: its callbacks could not be verified and would all be rejected; " +
			"set callbackSecret, or pollingOnly: true to learn outcomes by status checks only")
	case cfg.CallbackSecret != "" && cfg.PollingOnly:
		return errors.New("pollingOnly with a callbackSecret: choose one")
	}
	return nil
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "***"
}

// ParseConfigs decodes a JSON array of provider configs, e.g. from an
// environment variable. Blank input means no providers.
func ParseConfigs(jsonText string) ([]Config, error) {
	if strings.TrimSpace(jsonText) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(jsonText))
	dec.DisallowUnknownFields() // a misspelt key would silently drop a credential
	var cfgs []Config
	if err := dec.Decode(&cfgs); err != nil {
		return nil, fmt.Errorf("parse provider configs: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse provider configs: trailing data after the array")
	}
	seen := map[string]bool{}
	for i, c := range cfgs {
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("parse provider configs: entry %d has no name", i)
		case c.Type == "":
			return nil, fmt.Errorf("parse provider configs: provider %q has no type", c.Name)
		case seen[c.Name]:
			return nil, fmt.Errorf("parse provider configs: provider %q configured twice", c.Name)
		}
		seen[c.Name] = true
	}
	return cfgs, nil
}

// Fixed credentials of the sandbox PSP, shared by the sandbox, the dev stack
// and tests. They are not secrets.
const (
	SandboxCardpayUsername = "cardpay_sandbox_merchant"
	SandboxCardpayPassword = "cardpay_sandbox_password"
	SandboxPaydeskAPIKey   = "test_paydesk_sandbox_key"
	// SandboxOrchestraToken carries the scopes transactions.read and transactions.write.
	SandboxOrchestraToken = "orchestra_sandbox_token"
	// SandboxOrchestraReadOnlyToken carries only transactions.read: refunds are refused with 403.
	SandboxOrchestraReadOnlyToken = "orchestra_sandbox_readonly_token"
	SandboxMomoAPIKey             = "momo_sandbox_key"
	SandboxBankAPIKey             = "bank_sandbox_key"

	SandboxCardpayCallbackSecret      = "cbsec_sandbox_cardpay"
	SandboxPaydeskCallbackSecret      = "cbsec_sandbox_paydesk"
	SandboxOrchestraCallbackSecret    = "cbsec_sandbox_orchestra"
	SandboxMomoCallbackSecret         = "cbsec_sandbox_momo"
	SandboxBanktransferCallbackSecret = "cbsec_sandbox_banktransfer"
)

// Connector types, which are also the provider names of the dev stack.
const (
	TypeCardpay      = "cardpay"
	TypePaydesk      = "paydesk"
	TypeOrchestra    = "orchestra"
	TypeMomo         = "momo"
	TypeBanktransfer = "banktransfer"
	TypeStripe       = "stripe"
)

// SandboxConfigs returns the dev-stack providers, all pointing at the sandbox
// PSP at sandboxURL, each named after its type.
func SandboxConfigs(sandboxURL string) []Config {
	u := strings.TrimRight(sandboxURL, "/")
	return []Config{
		{Name: TypeCardpay, Type: TypeCardpay, BaseURL: u, Username: SandboxCardpayUsername, Password: SandboxCardpayPassword, CallbackSecret: SandboxCardpayCallbackSecret},
		{Name: TypePaydesk, Type: TypePaydesk, BaseURL: u, APIKey: SandboxPaydeskAPIKey, CallbackSecret: SandboxPaydeskCallbackSecret},
		{Name: TypeOrchestra, Type: TypeOrchestra, BaseURL: u, APIKey: SandboxOrchestraToken, CallbackSecret: SandboxOrchestraCallbackSecret},
		{Name: TypeMomo, Type: TypeMomo, BaseURL: u, APIKey: SandboxMomoAPIKey, CallbackSecret: SandboxMomoCallbackSecret},
		{Name: TypeBanktransfer, Type: TypeBanktransfer, BaseURL: u, APIKey: SandboxBankAPIKey, CallbackSecret: SandboxBanktransferCallbackSecret},
	}
}

// constructor builds a connector of one type; client is never nil.
type constructor func(cfg Config, client *http.Client) (Connector, error)

// constructors maps a connector type to its constructor. Each connector file
// registers itself, so adding a provider is one new file plus config.
var constructors = map[string]constructor{}

func register(typ string, c constructor) {
	if _, dup := constructors[typ]; dup {
		panic("providers: connector type registered twice: " + typ)
	}
	constructors[typ] = c
}

// Types returns the known connector types, sorted.
func Types() []string {
	return slices.Sorted(maps.Keys(constructors))
}

// Registry holds the configured connectors by provider name.
type Registry struct {
	connectors map[string]Connector
}

// defaultTimeout bounds one provider call when the caller passes no client.
const defaultTimeout = 30 * time.Second

// NewRegistry builds a connector for each config, all sharing client (one
// with a 30 s timeout when nil). Unknown types, duplicate names, missing
// credentials and a missing callback secret (unless polling-only) are errors.
func NewRegistry(cfgs []Config, client *http.Client) (*Registry, error) {
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout}
	}
	r := &Registry{connectors: make(map[string]Connector, len(cfgs))}
	var errs []error
	for _, cfg := range cfgs {
		c, err := newConnector(cfg, client)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := r.connectors[cfg.Name]; dup {
			errs = append(errs, fmt.Errorf("provider %q configured twice", cfg.Name))
			continue
		}
		r.connectors[cfg.Name] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("build provider registry: %w", err)
	}
	return r, nil
}

func newConnector(cfg Config, client *http.Client) (Connector, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("provider of type %q has no name", cfg.Type)
	}
	ctor, ok := constructors[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("provider %q: unknown type %q (known: %s)", cfg.Name, cfg.Type, strings.Join(Types(), ", "))
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("provider %q: base URL %q is not an absolute http(s) URL", cfg.Name, cfg.BaseURL)
		}
		cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	c, err := ctor(cfg, client)
	if err == nil {
		err = checkCallbacks(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("provider %q: %w", cfg.Name, err)
	}
	return c, nil
}

// requireFields takes name, value pairs and fails when any value is empty.
func requireFields(fields ...string) error {
	var missing []string
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			missing = append(missing, fields[i])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// RegistryOf returns a registry of ready-made connectors, by their names
// (connectors built elsewhere, or fakes in tests).
func RegistryOf(conns ...Connector) *Registry {
	r := &Registry{connectors: make(map[string]Connector, len(conns))}
	for _, c := range conns {
		r.connectors[c.Name()] = c
	}
	return r
}

// Get returns the connector configured under name.
func (r *Registry) Get(name string) (Connector, bool) {
	c, ok := r.connectors[name]
	return c, ok
}

// Names returns the configured provider names, sorted.
func (r *Registry) Names() []string {
	return slices.Sorted(maps.Keys(r.connectors))
}
