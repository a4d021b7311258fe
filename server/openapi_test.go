package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
)

// loadOpenAPI loads and validates server/openapi.json.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(server.OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// uuidFormat accepts every RFC 9562 UUID version (ids are v7).
var uuidFormat = openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)

func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.0.3" {
		t.Fatalf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	for _, name := range []string{"bearerAuth", "basicAuth"} {
		if doc.Components.SecuritySchemes[name] == nil {
			t.Errorf("security scheme %s missing", name)
		}
	}

	// Every implemented route is documented, and every documented operation is
	// implemented. /metrics exists when the API serves metrics, as `backflow api` does.
	e, ok := server.New(server.Deps{Metrics: http.NotFoundHandler()}).Handler().(*echo.Echo)
	if !ok {
		t.Fatal("Handler is not an *echo.Echo")
	}
	implemented := map[string]bool{}
	for _, r := range e.Routes() {
		if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, r.Method) {
			continue // group-level not-found handlers
		}
		path := echoPathToOpenAPI(r.Path)
		key := r.Method + " " + path
		implemented[key] = true
		if item := doc.Paths.Value(path); item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s is not documented", key)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			if !implemented[key] {
				t.Errorf("documented operation %s (%s) is not a route", key, op.OperationID)
			}
			// Authenticated routes (everything under /v1 but provider callbacks)
			// inherit the document's security, name their scope and document 401
			// and 403; the others are public.
			scope, _ := op.Extensions["x-required-scope"].(string)
			if strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/v1/provider-callbacks/") {
				if op.Security != nil {
					t.Errorf("%s overrides the document's security", key)
				}
				if !slices.Contains(append(slices.Clone(refund.MerchantScopes), refund.ScopeOps), scope) {
					t.Errorf("%s: x-required-scope %q is not a scope", key, scope)
				}
				if (scope == refund.ScopeOps) != strings.HasPrefix(path, "/v1/ops/") {
					t.Errorf("%s: x-required-scope %q, but only /v1/ops requires %s", key, scope, refund.ScopeOps)
				}
				for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests} {
					if op.Responses.Status(status) == nil {
						t.Errorf("%s does not document %d", key, status)
					}
				}
			} else if op.Security == nil || len(*op.Security) != 0 || scope != "" {
				t.Errorf("%s is public but its security is not []", key)
			}
			// Every POST under /v1 that the idempotency middleware covers takes Idempotency-Key.
			if method == http.MethodPost && strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/v1/provider-callbacks/") {
				if op.Parameters.GetByInAndName(openapi3.ParameterInHeader, "Idempotency-Key") == nil {
					t.Errorf("%s lacks the Idempotency-Key header parameter", key)
				}
				for status, resp := range op.Responses.Map() {
					if resp.Value.Headers["Idempotent-Replayed"] == nil {
						t.Errorf("%s response %s lacks the Idempotent-Replayed header", key, status)
					}
				}
			}
		}
	}

	// Every stable error code the server can emit is in the Problem code enum.
	codes := doc.Components.Schemas["Problem"].Value.Properties["code"].Value.Enum
	for _, code := range []string{server.CodeMalformed, server.CodeTooLarge, server.CodeRateLimited, server.CodeUnauthorized, server.CodeForbidden, server.CodeNotFound,
		server.CodeIdempotencyMismatch, server.CodeIdempotencyInFlight, server.CodeUnavailable, server.CodeInternal,
		server.CodeMethodNotAllowed, refund.CodeSessionNotFound, refund.CodeTransactionNotFound, refund.CodeRefundNotFound,
		refund.CodeNotCaptured, refund.CodeFullyRefunded, refund.CodeNotCancelable, refund.CodeAmountInsufficient,
		refund.CodeCurrencyMismatch, refund.CodeAmbiguous, refund.CodeMethodUnavailable, refund.CodeValidation,
		refund.CodeWebhookEndpointNotFound, refund.CodeWebhookEndpointLimit, refund.CodeWebhookEndpointDisabled,
		refund.CodeEventNotFound, refund.CodeNotAwaitingApproval, refund.CodeNotRetryable, refund.CodeWorkflowUnavailable,
		refund.CodeTargetUnsupported, refund.CodeTransactionDup, refund.CodeNotResolvable, refund.CodeMerchantNotFound,
		refund.CodeAPIKeyNotFound, refund.CodeWebhookURLNotAllowed} {
		if !slices.Contains(codes, any(code)) {
			t.Errorf("error code %s is not in the Problem.code enum", code)
		}
	}
}

// pathParam is a path template's parameter, such as {id}.
var pathParam = regexp.MustCompile(`\{[A-Za-z]+\}`)

// echoPathToOpenAPI turns /v1/refunds/:id into /v1/refunds/{id}.
func echoPathToOpenAPI(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// conformance sends real requests and checks each request and response
// against the document.
type conformance struct {
	s      *rig.Stack
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options

	// merchantID and key are the merchant a call is made as when it names
	// no other: the stack's, or a fixture's (newMerchant).
	merchantID uuid.UUID
	key        string

	exercised *exercised // shared by every merchant's calls
}

// exercised records "METHOD /template" of every operation called.
type exercised struct {
	mu  sync.Mutex
	ops map[string]bool
}

func newConformance(t *testing.T, s *rig.Stack) *conformance {
	doc := loadOpenAPI(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true, // an undocumented status fails
		SkipSettingDefaults:   true, // never rewrite the request that is sent
		MultiError:            true,
		AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			// The server checks the key; the document only requires one to be presented.
			h := in.RequestValidationInput.Request.Header.Get("Authorization")
			switch in.SecurityScheme.Scheme {
			case "bearer":
				if strings.HasPrefix(h, "Bearer ") {
					return nil
				}
			case "basic":
				if _, _, ok := in.RequestValidationInput.Request.BasicAuth(); ok {
					return nil
				}
			}
			return errors.New("no credentials for " + in.SecuritySchemeName)
		},
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.WithStringFormatValidator("uuid", uuidFormat)},
	}
	return &conformance{s: s, doc: doc, router: router, opts: opts, merchantID: s.MerchantID, key: s.MerchantKey,
		exercised: &exercised{ops: map[string]bool{}}}
}

// call describes one request.
type call struct {
	method, path string
	body         any    // nil, string, []byte or a JSON value
	auth         string // "" = c.key, the bearer key of c's merchant; "none"; "basic"; "ops" (the ops key); or "bearer:<key>"
	headers      []string
	// base is the API's URL; "" is the stack's API.
	base string
	// requestInvalid: the request deliberately breaks the document (the
	// server must reject it too).
	requestInvalid bool
	// requestUnchecked: the request is not checked against the document
	// (its response still is).
	requestUnchecked bool
	// want is the expected status; 0 accepts any (the caller checks it).
	want int
}

// do validates the request, sends it, checks the status and validates the
// response against the document.
func (c *conformance) do(t *testing.T, in call) rig.Response {
	t.Helper()
	var raw []byte
	switch b := in.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	newReq := func() *http.Request {
		var rd io.Reader
		if in.body != nil {
			rd = bytes.NewReader(raw)
		}
		base := in.base
		if base == "" {
			base = c.s.APIURL
		}
		req, err := http.NewRequest(in.method, base+in.path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if in.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		switch {
		case in.auth == "":
			req.Header.Set("Authorization", "Bearer "+c.key)
		case in.auth == "ops":
			req.Header.Set("Authorization", "Bearer "+c.s.OpsKey)
		case in.auth == "basic":
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.key+":")))
		case strings.HasPrefix(in.auth, "bearer:"):
			req.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(in.auth, "bearer:"))
		}
		for i := 0; i+1 < len(in.headers); i += 2 {
			req.Header.Set(in.headers[i], in.headers[i+1])
		}
		return req
	}

	vreq := newReq()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("%s %s: not in the document: %v", in.method, in.path, err)
	}
	c.exercised.mu.Lock()
	c.exercised.ops[route.Method+" "+route.Path] = true
	c.exercised.mu.Unlock()
	reqInput := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: c.opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), reqInput)
	switch {
	case in.requestUnchecked:
	case in.requestInvalid && reqErr == nil:
		t.Errorf("%s %s: the document accepts a request the test means to be invalid", in.method, in.path)
	case !in.requestInvalid && reqErr != nil:
		t.Errorf("%s %s: request does not conform to the document: %v", in.method, in.path, reqErr)
	}

	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatalf("%s %s: %v", in.method, in.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if in.want != 0 && resp.StatusCode != in.want {
		t.Fatalf("%s %s: status %d, want %d: %s", in.method, in.path, resp.StatusCode, in.want, body)
	}
	if err := c.validateResponse(reqInput, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("%s %s: %d response does not conform to the document: %v\n%s", in.method, in.path, resp.StatusCode, err, body)
	}
	return rig.Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

func (c *conformance) validateResponse(reqInput *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) error {
	in := &openapi3filter.ResponseValidationInput{RequestValidationInput: reqInput, Status: status, Header: header, Options: c.opts}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// problemOf decodes a problem response and checks its code; do has
// already checked the status.
func problemOf(t *testing.T, r rig.Response, code string) server.Problem {
	t.Helper()
	return rig.AssertProblem(t, r, r.Status, code)
}

// ikey is a fresh Idempotency-Key.
func ikey() string { return "oa-" + uuid.NewString() }

// conformanceSubtest is a subtest of TestOpenAPIConformance. Each builds
// what it needs with the fixtures (newMerchant, newCardTransaction,
// newSucceededRefund, newHookedMerchant...), so that any one runs alone.
type conformanceSubtest struct {
	name string
	run  func(t *testing.T, c *conformance)
}

// TestOpenAPIConformance calls every documented operation on one stack and
// checks each request and answer against the document. The subtests are
// in openapi_*_test.go, a file per API area; their fixtures in
// openapi_fixtures_test.go.
func TestOpenAPIConformance(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	// Webhook retries within a second, so failed attempts are seen quickly.
	s.Activities.Webhooks = activities.WebhookPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
		MaximumInterval: time.Second, GiveUpAfter: time.Minute, AttemptTimeout: 3 * time.Second}
	s.StartWorker(t)
	c := newConformance(t, s)

	subtests := []conformanceSubtest{
		{"probes", testProbesConformance},
		{"create session and transaction", testTransactionConformance},
		{"payout transaction", testPayoutTransactionConformance},
		{"create and retrieve refund", testCreateRefundConformance},
		{"list refunds", testListRefundsConformance},
		{"cancel a sent refund is 409", testCancelSentRefundConformance},
		{"400", testMalformedConformance},
		{"413", testTooLargeConformance},
		{"401", testUnauthorizedConformance},
		{"403", testForbiddenConformance},
		{"404", testNotFoundConformance},
		{"409", testNotCapturedConformance},
		{"422", testValidationConformance},
		{"webhook endpoints", testWebhookEndpointsConformance},
		{"events", testEventsConformance},
		{"ops", testOpsConformance},
		{"ops approval", testOpsApprovalConformance},
		{"merchants and keys", testAccessConformance},
		{"webhook URL policy", testURLPolicyConformance},
		{"429", testRateLimitConformance},
		{"metrics", testMetricsConformance},
		{"scopes", testScopesConformance},
		{"drift is detected", testRefundDriftConformance},
		{"drift of webhook, event and ops answers is detected", testWebhookDriftConformance},
	}
	ran := 0
	for _, st := range subtests {
		t.Run(st.name, func(t *testing.T) {
			ran++
			st.run(t, c)
		})
	}

	// Every documented operation was called above. When -run picks some
	// subtests, the others' calls are missing: nothing to check then.
	t.Run("every operation is exercised", func(t *testing.T) {
		if ran < len(subtests) {
			t.Logf("%d of %d subtests ran: not checked", ran, len(subtests))
			return
		}
		for path, item := range c.doc.Paths.Map() {
			for method, op := range item.Operations() {
				if !c.exercised.ops[method+" "+path] {
					t.Errorf("%s %s (%s) is never called", method, path, op.OperationID)
				}
			}
		}
	})
}

// input is the validation input of a request, for validating crafted responses.
func (c *conformance) input(t *testing.T, method, path string) *openapi3filter.RequestValidationInput {
	t.Helper()
	req, err := http.NewRequest(method, c.s.APIURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: not in the document: %v", method, path, err)
	}
	return &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.opts}
}

// rejectsDrift checks that the document refuses each mutation of good, a
// conforming answer to method path.
func (c *conformance) rejectsDrift(t *testing.T, method, path string, good rig.Response, mutations map[string]func(m map[string]any)) {
	t.Helper()
	in := c.input(t, method, path)
	if err := c.validateResponse(in, good.Status, good.Header, good.Body); err != nil {
		t.Fatalf("%s %s: the unchanged answer does not conform: %v", method, path, err)
	}
	for name, mutate := range mutations {
		var m map[string]any
		if err := json.Unmarshal(good.Body, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		bad, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.validateResponse(in, good.Status, good.Header, bad); err == nil {
			t.Errorf("%s %s: %s: the document accepts a drifted answer", method, path, name)
		}
	}
}

// dig walks decoded JSON by object keys and array indexes to an object.
func dig(v any, steps ...any) map[string]any {
	for _, s := range steps {
		switch k := s.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v.(map[string]any)
}
