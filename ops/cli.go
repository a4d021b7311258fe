package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/backflow/backflow/refund"
	"github.com/google/uuid"
)

// Usage is the help of `backflow ops`.
const Usage = `usage: backflow ops <command> [flags]

Inspect and steer refunds, and manage merchants and their API keys, through
the ops API (/v1/ops, an API key with the ops scope). Environment: BACKFLOW_URL (default http://127.0.0.1:8080) and
BACKFLOW_OPS_KEY, as written by the dev stack to .dev/demo.env.

commands:
  list [--stuck] [--status S] [--provider P] [--merchant M] [--limit N] [--cursor C] [--json]
                           list refunds across merchants, newest first
  show <refund-id> [--json]
                           one refund: database row, live workflow status,
                           timeline, ledger, events, webhook attempts, ops audit
  retry <refund-id>        re-drive a stuck refund now (signal retry)
  cancel <refund-id> [--reason R]
                           cancel a refund not yet sent to its provider
  approve <refund-id> [--reason R]
                           approve a refund awaiting approval
  reject <refund-id> --reason R
                           reject a refund awaiting approval (it is canceled)
  resolve <refund-id> --status SUCCEEDED|DECLINED|FAILED --reason R
                           record the outcome ops found at the provider (its
                           dashboard, support) for a refund stuck with an
                           unknown outcome; the workflow settles or releases it
  redeliver <event-id>     deliver a webhook event again
  audit [--refund ID] [--limit N] [--json]
                           ops actions, newest first

  merchants create --name N [--approval-threshold MINOR_UNITS] [--json]
                           add a merchant
  merchants list [--limit N] [--cursor C] [--json]
                           merchants, newest first
  keys create --merchant M --name N [--scopes S1,S2] [--json]
                           create an API key of a merchant; its secret is
                           printed once. Default scopes refunds:read,
                           refunds:write, webhooks:manage; transactions:write
                           (the payments platform's) only when listed
  keys list --merchant M [--json]
                           a merchant's keys: prefix, scopes, last use, never
                           the secret
  keys revoke <key-id>     revoke a key: 401 from its next request on

  help                     this help

Every action is recorded in the ops audit, whatever its outcome. Errors
print the API's problem detail and exit non-zero.`

// Options configure Run.
type Options struct {
	URL    string       // API base URL
	Key    string       // ops API key
	Stdout io.Writer    // where results go
	HTTP   *http.Client // nil: a client with a 30 s timeout
}

// Run runs one `backflow ops` command. It writes results to opts.Stdout
// and returns an error (the API's problem detail when it refused) for a
// non-zero exit.
func Run(ctx context.Context, args []string, opts Options) error {
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if len(args) == 0 {
		return errors.New("missing command\n" + strings.TrimSpace(Usage))
	}
	c := &Client{BaseURL: opts.URL, Key: opts.Key, HTTP: opts.HTTP}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "help", "-h", "--help":
		_, err = fmt.Fprintln(opts.Stdout, Usage)
		return err
	case "list":
		err = runList(ctx, c, rest, opts.Stdout)
	case "show":
		err = runShow(ctx, c, rest, opts.Stdout)
	case "retry", "cancel", "approve", "reject", "resolve":
		err = runAction(ctx, c, cmd, rest, opts.Stdout)
	case "redeliver":
		err = runRedeliver(ctx, c, rest, opts.Stdout)
	case "audit":
		err = runAudit(ctx, c, rest, opts.Stdout)
	case "merchants":
		err = runMerchants(ctx, c, rest, opts.Stdout)
	case "keys":
		err = runKeys(ctx, c, rest, opts.Stdout)
	default:
		return fmt.Errorf("unknown ops command %q\n%s", cmd, Usage)
	}
	if err != nil {
		return fmt.Errorf("ops %s: %w", cmd, err)
	}
	return nil
}

// parse parses flags anywhere among the arguments (`show <id> --json` as
// well as `show --json <id>`) and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, flagHelp(fs))
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func flagHelp(fs *flag.FlagSet) string {
	var b bytes.Buffer
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return "flags of " + fs.Name() + ":\n" + b.String()
}

// oneID checks that exactly one positional argument, a UUID, was given.
func oneID(fs *flag.FlagSet, positional []string, what string) (string, error) {
	if len(positional) != 1 {
		return "", fmt.Errorf("want exactly one %s, got %d arguments\n%s", what, len(positional), flagHelp(fs))
	}
	if _, err := uuid.Parse(positional[0]); err != nil {
		return "", fmt.Errorf("%q is not a valid %s (a UUID)", positional[0], what)
	}
	return positional[0], nil
}

func runList(ctx context.Context, c *Client, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	var f ListFilter
	fs.BoolVar(&f.Stuck, "stuck", false, "only refunds flagged stuck")
	fs.StringVar(&f.Status, "status", "", "only refunds in this status (PENDING, PROCESSING, SUCCEEDED, DECLINED, FAILED, CANCELED)")
	fs.StringVar(&f.Provider, "provider", "", "only refunds of this provider (cardpay, paydesk, ...)")
	fs.StringVar(&f.MerchantID, "merchant", "", "only refunds of this merchant id")
	fs.StringVar(&f.Cursor, "cursor", "", "next page, as printed after a full page")
	fs.IntVar(&f.Limit, "limit", 0, "page size (default 50, at most 200)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	positional, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return fmt.Errorf("unexpected arguments %q\n%s", positional, flagHelp(fs))
	}
	f.Status = strings.ToUpper(f.Status)
	page, raw, err := c.ListRefunds(ctx, f)
	return emit(out, *asJSON, raw, err, func(out io.Writer) error { return renderList(out, page) })
}

func runShow(ctx context.Context, c *Client, args []string, out io.Writer) error {
	return runOnID(ctx, "show", "refund id", args, out, c.ShowRefund, renderShow)
}

// runOnID runs a command that takes one id and --json: it fetches with get
// and prints with render.
func runOnID[T any](ctx context.Context, name, what string, args []string, out io.Writer,
	get func(context.Context, string) (T, []byte, error), render func(io.Writer, T) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	positional, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(fs, positional, what)
	if err != nil {
		return err
	}
	v, raw, err := get(ctx, id)
	return emit(out, *asJSON, raw, err, func(out io.Writer) error { return render(out, v) })
}

func runAction(ctx context.Context, c *Client, action string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	var reason, status *string
	if action != "retry" {
		help := "why (recorded in the audit and the workflow's timeline)"
		if action == "reject" || action == "resolve" {
			help += "; required"
		}
		reason = fs.String("reason", "", help)
	}
	if action == "resolve" {
		status = fs.String("status", "", "the outcome found at the provider: SUCCEEDED, DECLINED or FAILED; required")
	}
	asJSON := fs.Bool("json", false, "print the API's JSON")
	positional, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(fs, positional, "refund id")
	if err != nil {
		return err
	}
	var why string
	if reason != nil {
		why = strings.TrimSpace(*reason)
	}
	if (action == "reject" || action == "resolve") && why == "" {
		return fmt.Errorf("--reason is required: say why the refund is %sed", strings.TrimSuffix(action, "e"))
	}
	req := ActionRequest{Reason: why}
	if status != nil {
		if req.Status = refund.Status(strings.ToUpper(strings.TrimSpace(*status))); req.Status == "" {
			return errors.New("--status is required: SUCCEEDED, DECLINED or FAILED, as the provider says")
		}
	}
	res, raw, err := c.RefundAction(ctx, action, id, req)
	return emit(out, *asJSON, raw, err, func(out io.Writer) error { return renderAction(out, res) })
}

func runRedeliver(ctx context.Context, c *Client, args []string, out io.Writer) error {
	return runOnID(ctx, "redeliver", "event id", args, out, c.Redeliver, renderAction)
}

func runAudit(ctx context.Context, c *Client, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	refundID := fs.String("refund", "", "only actions on this refund id")
	limit := fs.Int("limit", 0, "how many entries (default 50, at most 200)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	positional, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return fmt.Errorf("unexpected arguments %q\n%s", positional, flagHelp(fs))
	}
	page, raw, err := c.Audit(ctx, *refundID, *limit)
	return emit(out, *asJSON, raw, err, func(out io.Writer) error { return renderAudit(out, page.Data, true) })
}

// emit prints the API's JSON answer with --json, else the rendered view.
func emit(out io.Writer, asJSON bool, raw []byte, err error, render func(io.Writer) error) error {
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, raw)
	}
	return render(out)
}

// printJSON prints the API's answer indented, for scripts and jq.
func printJSON(out io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("indent JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := out.Write(b.Bytes())
	return err
}
