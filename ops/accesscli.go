package ops

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// CreateMerchant adds a merchant.
func (c *Client) CreateMerchant(ctx context.Context, req NewMerchantRequest) (Merchant, []byte, error) {
	var m Merchant
	raw, err := c.do(ctx, http.MethodPost, "/v1/ops/merchants", req, &m)
	return m, raw, err
}

// ListMerchants lists merchants, newest first.
func (c *Client) ListMerchants(ctx context.Context, cursor string, limit int) (MerchantPage, []byte, error) {
	var page MerchantPage
	raw, err := c.do(ctx, http.MethodGet, "/v1/ops/merchants?"+pageQuery(cursor, limit), nil, &page)
	return page, raw, err
}

// CreateAPIKey creates a key of a merchant; the answer carries its secret, once.
func (c *Client) CreateAPIKey(ctx context.Context, merchantID string, req NewAPIKeyRequest) (APIKey, []byte, error) {
	var k APIKey
	raw, err := c.do(ctx, http.MethodPost, "/v1/ops/merchants/"+url.PathEscape(merchantID)+"/api-keys", req, &k)
	return k, raw, err
}

// ListAPIKeys lists a merchant's keys, without secrets.
func (c *Client) ListAPIKeys(ctx context.Context, merchantID string) (APIKeyList, []byte, error) {
	var list APIKeyList
	raw, err := c.do(ctx, http.MethodGet, "/v1/ops/merchants/"+url.PathEscape(merchantID)+"/api-keys", nil, &list)
	return list, raw, err
}

// RevokeAPIKey revokes a key: it is refused (401) from the next request on.
func (c *Client) RevokeAPIKey(ctx context.Context, keyID string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/ops/api-keys/"+url.PathEscape(keyID), nil, nil)
	return err
}

func pageQuery(cursor string, limit int) string {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	return q.Encode()
}

// runMerchants is `backflow ops merchants create|list`.
func runMerchants(ctx context.Context, c *Client, args []string, out io.Writer) error {
	sub, rest, err := subcommand(args, "create", "list")
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("merchants "+sub, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if sub == "list" {
		cursor := fs.String("cursor", "", "next page, as printed after a full page")
		limit := fs.Int("limit", 0, "page size (default 50, at most 200)")
		if err := noArgs(fs, rest); err != nil {
			return err
		}
		page, raw, err := c.ListMerchants(ctx, *cursor, *limit)
		return emit(out, *asJSON, raw, err, func(out io.Writer) error { return renderMerchants(out, page) })
	}
	name := fs.String("name", "", "the merchant's name; required")
	threshold := fs.Int64("approval-threshold", -1, "refunds above this many minor units wait for an ops approval (default: none do)")
	if err := noArgs(fs, rest); err != nil {
		return err
	}
	if strings.TrimSpace(*name) == "" {
		return errors.New("--name is required")
	}
	req := NewMerchantRequest{Name: *name}
	if *threshold >= 0 {
		req.ApprovalThreshold = threshold
	}
	m, raw, err := c.CreateMerchant(ctx, req)
	return emit(out, *asJSON, raw, err, func(out io.Writer) error { return renderMerchants(out, MerchantPage{Data: []Merchant{m}}) })
}

// runKeys is `backflow ops keys create|list|revoke`.
func runKeys(ctx context.Context, c *Client, args []string, out io.Writer) error {
	sub, rest, err := subcommand(args, "create", "list", "revoke")
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	switch sub {
	case "revoke":
		positional, err := parse(fs, rest)
		if err != nil {
			return err
		}
		id, err := oneID(fs, positional, "key id")
		if err != nil {
			return err
		}
		if err := c.RevokeAPIKey(ctx, id); err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "key %s revoked: requests with it are refused (401) from now on\n", id)
		return err
	case "list":
		merchant := fs.String("merchant", "", "the merchant id; required")
		if err := noArgs(fs, rest); err != nil {
			return err
		}
		if *merchant == "" {
			return errors.New("--merchant is required")
		}
		list, raw, err := c.ListAPIKeys(ctx, *merchant)
		return emit(out, *asJSON, raw, err, func(out io.Writer) error { return renderKeys(out, list.Data) })
	}
	merchant := fs.String("merchant", "", "the merchant id; required")
	name := fs.String("name", "", "what the key is for (e.g. checkout-backend); required")
	scopes := fs.String("scopes", "", "comma-separated scopes (default refunds:read,refunds:write,webhooks:manage; "+
		"transactions:write, the payments platform's, only when listed)")
	if err := noArgs(fs, rest); err != nil {
		return err
	}
	if *merchant == "" || strings.TrimSpace(*name) == "" {
		return errors.New("--merchant and --name are required")
	}
	req := NewAPIKeyRequest{Name: *name}
	for s := range strings.SplitSeq(*scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			req.Scopes = append(req.Scopes, s)
		}
	}
	k, raw, err := c.CreateAPIKey(ctx, *merchant, req)
	return emit(out, *asJSON, raw, err, func(out io.Writer) error { return renderCreatedKey(out, k) })
}

// subcommand splits off the first argument, one of names.
func subcommand(args []string, names ...string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, fmt.Errorf("missing subcommand: one of %s", strings.Join(names, ", "))
	}
	for _, n := range names {
		if args[0] == n {
			return n, args[1:], nil
		}
	}
	return "", nil, fmt.Errorf("unknown subcommand %q: one of %s", args[0], strings.Join(names, ", "))
}

// noArgs parses flags and refuses positional arguments.
func noArgs(fs *flag.FlagSet, args []string) error {
	positional, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return fmt.Errorf("unexpected arguments %q\n%s", positional, flagHelp(fs))
	}
	return nil
}
