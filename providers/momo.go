package providers

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

func init() { register(TypeMomo, newMomo) }

// momo is the mobile-money connector (source 000, payout refund): there is no
// refund API, so the money goes back as a payout to the original wallet, and
// the outcome usually arrives by callback.
type momo struct {
	base
	noRefunds
}

func newMomo(cfg Config, client *http.Client) (Connector, error) {
	if err := requireFields("baseUrl", cfg.BaseURL, "apiKey", cfg.APIKey); err != nil {
		return nil, err
	}
	return &momo{base: base{
		name:   cfg.Name,
		caps:   Capabilities{Payouts: true, AsyncOutcome: true},
		secret: cfg.CallbackSecret,
		api: &httpAPI{
			provider:  cfg.Name,
			baseURL:   cfg.BaseURL,
			client:    client,
			authorize: bearer(cfg.APIKey),
			decodeErr: envelopeError,
		},
	}}, nil
}

type momoPayoutRequest struct {
	Amount      int64  `json:"amount"`
	Currency    string `json:"currency"`
	MSISDN      string `json:"msisdn"`
	Network     string `json:"network,omitempty"`
	Reference   string `json:"reference"`
	Description string `json:"description,omitempty"`
}

type momoPayout struct {
	ID             string `json:"id"`
	Reference      string `json:"reference"`
	Status         string `json:"status"`
	FailureCode    string `json:"failureCode"`
	FailureMessage string `json:"failureMessage"`
}

var momoStatuses = map[string]Status{
	"pending":    StatusProcessing,
	"successful": StatusSucceeded,
	"rejected":   StatusDeclined,
	"failed":     StatusFailed,
	"reversed":   StatusReversed, // the network took a successful payout back
}

func (p momoPayout) result() Result {
	return statusResult(momoStatuses, p.Status, p.ID, p.FailureCode, p.FailureMessage)
}

// msisdn normalises a mobile number to the digits-only international form.
func msisdn(number string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, number)
}

// Payout sends the amount to the wallet in req.Destination. The payout's
// reference is the Backflow refund id, echoed in callbacks.
func (c *momo) Payout(ctx context.Context, req PayoutRequest) (Result, error) {
	d := req.Destination
	if d.MobileNumber == "" {
		return Result{}, Invalid("bad_destination", c.name+" payouts need a mobile number")
	}
	in := momoPayoutRequest{
		Amount:      req.Amount,
		Currency:    strings.ToUpper(req.Currency),
		MSISDN:      msisdn(d.MobileNumber),
		Network:     d.Network,
		Reference:   cmp.Or(req.RefundID, req.IdempotencyKey),
		Description: req.Description,
	}
	var out momoPayout
	if err := c.api.doJSON(ctx, http.MethodPost, "/momo/v1/payouts", req.IdempotencyKey, in, &out); err != nil {
		return Result{}, fmt.Errorf("create %s payout: %w", c.name, err)
	}
	return out.result(), nil
}

// PayoutStatus reads the payout by id or, failing that, by idempotency key.
func (c *momo) PayoutStatus(ctx context.Context, l Lookup) (Result, error) {
	out, err := find[momoPayout](ctx, c.api, l.ProviderReference, l.RefundID,
		"/momo/v1/payouts/"+pathEscape(l.ProviderReference),
		"/momo/v1/payouts?idempotencyKey="+url.QueryEscape(l.RefundID), "payouts")
	if err != nil {
		return Result{}, fmt.Errorf("get %s payout: %w", c.name, err)
	}
	return out.result(), nil
}

// ParseCallback verifies and decodes a payout.updated callback; the payout's
// reference is the Backflow refund id Payout sent.
func (c *momo) ParseCallback(header http.Header, body []byte) (CallbackEvent, error) {
	p, err := parseSandboxCallback[momoPayout](header, body, c.secret)
	if err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, err)
	}
	return callbackEvent(p.Reference, p.result())
}
