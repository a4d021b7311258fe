package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
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
	"github.com/backflow/backflow/metrics"
	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
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
// checks each request and answer against the document.
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

// testProbesConformance: the public probes and the document itself.
func testProbesConformance(t *testing.T, c *conformance) {
	c.do(t, call{method: "GET", path: "/healthz", auth: "none", want: 200})
	c.do(t, call{method: "GET", path: "/readyz", auth: "none", want: 200})
	r := c.do(t, call{method: "GET", path: "/openapi.json", auth: "none", want: 200})
	if !bytes.Equal(r.Body, server.OpenAPI()) {
		t.Error("GET /openapi.json does not serve the embedded document")
	}
}

// testMetricsConformance: /metrics is served when the API runs with
// metrics, as `backflow api` does.
func testMetricsConformance(t *testing.T, c *conformance) {
	s := c.s
	refundID := c.newRefund(t, c.newCardTransaction(t), 2000)
	m := metrics.New()
	m.WatchStore(s.Store, metrics.StoreScrapeTimeout, s.Logger)
	svc := rig.NewService(s.Store, s.Temporal, s.TaskQueue, s.Providers, s.Logger, refunds.Hooks{Created: m.RefundCreated})
	api := httptest.NewServer(server.New(server.Deps{Service: svc, Logger: s.Logger, Metrics: m.Handler(),
		Middleware: []echo.MiddlewareFunc{m.EchoMiddleware}}).Handler())
	t.Cleanup(api.Close)
	c.do(t, call{base: api.URL, method: "GET", path: "/v1/refunds/" + refundID, want: 200})
	r := c.do(t, call{base: api.URL, method: "GET", path: "/metrics", auth: "none", want: 200})
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
	for _, want := range []string{metrics.HTTPRequests + `{code="200",method="GET",route="/v1/refunds/:id"} 1`, metrics.StuckRefunds + " "} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("the scrape lacks %q", want)
		}
	}
	// Prometheus may ask for the protobuf format.
	openapi3filter.RegisterBodyDecoder(protobufMetrics, openapi3filter.FileBodyDecoder)
	t.Cleanup(func() { openapi3filter.UnregisterBodyDecoder(protobufMetrics) })
	r = c.do(t, call{base: api.URL, method: "GET", path: "/metrics", auth: "none", want: 200,
		headers: []string{"Accept", protobufMetrics + ";proto=io.prometheus.client.MetricFamily;encoding=delimited"}})
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, protobufMetrics) {
		t.Errorf("content type %q", ct)
	}
}

// protobufMetrics is the media type of the Prometheus protobuf exposition format.
const protobufMetrics = "application/vnd.google.protobuf"

// testTransactionConformance: a session and a captured card transaction
// with line items and a gift-card redemption.
func testTransactionConformance(t *testing.T, c *conformance) {
	r := c.do(t, call{method: "POST", path: "/v1/sessions", body: map[string]any{}, headers: []string{"Idempotency-Key", ikey()}, want: 201})
	var sess struct{ SessionID string }
	r.JSON(t, &sess)
	body := map[string]any{"sessionId": sess.SessionID, "provider": "cardpay", "method": "card", "amount": 10000,
		"currency": "EUR", "status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8]}
	maps.Copy(body, cardBasket)
	r = c.do(t, call{method: "POST", path: "/v1/transactions", headers: []string{"Idempotency-Key", ikey()}, want: 201, body: body})
	var tx server.TransactionObject
	r.JSON(t, &tx)
	txID := tx.TransactionID.String()
	// The same payment registered again: its transaction, once; other details: a conflict.
	c.do(t, call{method: "POST", path: "/v1/transactions", want: 200, body: body})
	other := maps.Clone(body)
	other["amount"] = 20000
	c.do(t, call{method: "POST", path: "/v1/transactions", want: 409, body: other})
	// cardpay cannot refund to a gift card.
	c.do(t, call{method: "POST", path: "/v1/refunds", want: 422, body: map[string]any{"originalTransactionId": txID,
		"targetType": "GIFT_CARD_REDEMPTION", "targetId": "gc-1"}})
	c.do(t, call{method: "GET", path: "/v1/transactions/" + txID, want: 200})
}

// testPayoutTransactionConformance: a mobile-money transaction with a
// payout destination; its refunds go out as payouts.
func testPayoutTransactionConformance(t *testing.T, c *conformance) {
	r := c.do(t, call{method: "POST", path: "/v1/sessions", want: 201})
	var sess struct{ SessionID string }
	r.JSON(t, &sess)
	c.do(t, call{method: "POST", path: "/v1/transactions", want: 201,
		body: map[string]any{"sessionId": sess.SessionID, "provider": "momo", "method": "mobile_money", "amount": 5000,
			"currency": "KES", "status": "CAPTURED", "providerReference": "momo_" + uuid.NewString()[:8],
			"payoutDestination": map[string]any{"type": "mobile_money", "mobileNumber": "+254700000001", "network": "mpesa", "country": "KE"}}})
	r = c.do(t, call{method: "POST", path: "/v1/refunds", want: 202, body: map[string]any{"sessionId": sess.SessionID,
		"refundValue": map[string]any{"amount": 1000, "currency": "KES"}}})
	var ref refund.Object
	r.JSON(t, &ref)
	if ref.Method != refund.MethodPayoutRefund {
		t.Errorf("method = %s, want %s", ref.Method, refund.MethodPayoutRefund)
	}
}

// testCreateRefundConformance: a refund of one line item, created,
// replayed, refused with another body, then read once it succeeded.
func testCreateRefundConformance(t *testing.T, c *conformance) {
	tx := c.newCardTransaction(t)
	sessionID, txID := tx.SessionID, tx.ID
	key := ikey()
	body := map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": 2000, "currency": "EUR"},
		"reason": "customer returned one item", "reasonCode": "RETURN", "description": "return of sku-1",
		"reference": "ret-42", "metadata": map[string]any{"orderId": "ord_1", "channel": "web"},
		"lineItems": []map[string]any{{"id": "sku-1", "quantity": 1}}}
	r := c.do(t, call{method: "POST", path: "/v1/refunds", body: body, headers: []string{"Idempotency-Key", key}, want: 202})
	var created refund.Object
	r.JSON(t, &created)
	if created.Status != refund.StatusPending || created.OriginalTransactionID.String() != txID {
		t.Fatalf("created = %s", r.Body)
	}
	refundID := created.TransactionID.String()

	// The same key and body replay the 202 with Idempotent-Replayed.
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: body, headers: []string{"Idempotency-Key", key}, want: 202})
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay lacks Idempotent-Replayed: true")
	}
	// The same key with another body is 422 idempotency.mismatch.
	body["reason"] = "another reason"
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: body, headers: []string{"Idempotency-Key", key}, want: 422})
	problemOf(t, r, server.CodeIdempotencyMismatch)

	c.s.WaitRefund(t, refundID, 30*time.Second, refund.StatusSucceeded)
	r = c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, want: 200})
	var done refund.Object
	r.JSON(t, &done)
	if done.CompletedAt == nil || done.ProviderReference == "" {
		t.Errorf("succeeded refund lacks completedAt or providerReference: %s", r.Body)
	}
	c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, auth: "basic", want: 200})
	c.do(t, call{method: "GET", path: "/v1/transactions/" + txID, want: 200})
}

// testListRefundsConformance: the refunds of a session, page by page, and
// the other filters.
func testListRefundsConformance(t *testing.T, c *conformance) {
	tx := c.newCardTransaction(t)
	sessionID, txID := tx.SessionID, tx.ID
	c.newRefund(t, tx, 2000)
	// A second refund gives the session two refunds.
	c.do(t, call{method: "POST", path: "/v1/refunds", want: 202, body: map[string]any{"originalTransactionId": txID,
		"refundValue": map[string]any{"amount": 100, "currency": "EUR"}}})
	r := c.do(t, call{method: "GET", path: "/v1/refunds?sessionId=" + sessionID + "&limit=1", want: 200})
	var page struct {
		Data       []refund.Object `json:"data"`
		NextCursor string          `json:"nextCursor"`
	}
	r.JSON(t, &page)
	if len(page.Data) != 1 || page.NextCursor == "" {
		t.Fatalf("first page = %s", r.Body)
	}
	c.do(t, call{method: "GET", path: "/v1/refunds?sessionId=" + sessionID + "&limit=1&cursor=" + page.NextCursor, want: 200})
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	c.do(t, call{method: "GET", path: "/v1/refunds?status=SUCCEEDED&originalTransactionId=" + txID + "&createdFrom=" + from, want: 200})
	c.do(t, call{method: "GET", path: "/v1/refunds", want: 200})
}

// testCancelSentRefundConformance: a refund the provider took can no
// longer be canceled.
func testCancelSentRefundConformance(t *testing.T, c *conformance) {
	refundID := c.newSucceededRefund(t)
	r := c.do(t, call{method: "POST", path: "/v1/refunds/" + refundID + "/cancel", headers: []string{"Idempotency-Key", ikey()}, want: 409})
	problemOf(t, r, refund.CodeNotCancelable)
}

// testMalformedConformance: 400, a request the server cannot read.
func testMalformedConformance(t *testing.T, c *conformance) {
	sessionID := c.newCardTransaction(t).SessionID
	r := c.do(t, call{method: "POST", path: "/v1/refunds", body: `{"sessionId": `, requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": sessionID, "surprise": 1}, requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": "10", "currency": "EUR"}}, requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": "not-a-uuid"}, requestInvalid: true, want: 400})
	if p := problemOf(t, r, server.CodeMalformed); len(p.Errors) != 1 || p.Errors[0].Field != "sessionId" {
		t.Errorf("errors = %+v", p.Errors)
	}
	r = c.do(t, call{method: "GET", path: "/v1/refunds/not-a-uuid", requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "GET", path: "/v1/refunds?limit=500", requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "GET", path: "/v1/refunds?status=LOST", requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "POST", path: "/v1/sessions", headers: []string{"Idempotency-Key", strings.Repeat("k", 256)}, requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
}

// testTooLargeConformance: 413, a body over the limit.
func testTooLargeConformance(t *testing.T, c *conformance) {
	sessionID := c.newCardTransaction(t).SessionID
	big := `{"sessionId": "` + sessionID + `", "reason": "` + strings.Repeat("x", 70<<10) + `"}`
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/refunds", body: big, requestInvalid: true, want: 413}), server.CodeTooLarge)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/merchants", auth: "ops", body: big, requestUnchecked: true, want: 413}), server.CodeTooLarge)
}

// testUnauthorizedConformance: 401, no key or an unknown one.
func testUnauthorizedConformance(t *testing.T, c *conformance) {
	sessionID := c.newCardTransaction(t).SessionID
	r := c.do(t, call{method: "GET", path: "/v1/refunds", auth: "none", requestInvalid: true, want: 401})
	problemOf(t, r, server.CodeUnauthorized)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", auth: "bearer:bf_not_a_key", body: map[string]any{"sessionId": sessionID}, want: 401})
	problemOf(t, r, server.CodeUnauthorized)
}

// testForbiddenConformance: 403, a key without the operation's scope.
func testForbiddenConformance(t *testing.T, c *conformance) {
	sessionID := c.newCardTransaction(t).SessionID
	_, readOnly := c.s.NewMerchantKey(t, nil, refund.ScopeRefundsRead)
	r := c.do(t, call{method: "POST", path: "/v1/refunds", auth: "bearer:" + readOnly, body: map[string]any{"sessionId": sessionID}, want: 403})
	problemOf(t, r, server.CodeForbidden)
}

// testNotFoundConformance: 404, ids nobody has and another merchant's.
func testNotFoundConformance(t *testing.T, c *conformance) {
	refundID := c.newRefund(t, c.newCardTransaction(t), 2000)
	missing := uuid.Must(uuid.NewV7()).String()
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/refunds/" + missing, want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/transactions/" + missing, want: 404}), refund.CodeTransactionNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/refunds/" + missing + "/cancel", want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": missing}, want: 404}), refund.CodeSessionNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/transactions", want: 404, body: map[string]any{"sessionId": missing,
		"provider": "cardpay", "method": "card", "amount": 100, "currency": "EUR", "status": "CAPTURED", "providerReference": "x"}}),
		refund.CodeSessionNotFound)
	// Another merchant's refund is 404, never 403.
	_, other := c.s.NewMerchantKey(t, nil)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, auth: "bearer:" + other, want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/provider-callbacks/nope", body: map[string]any{}, auth: "none", want: 404}), server.CodeNotFound)
}

// testNotCapturedConformance: 409, a refund of a payment not captured.
func testNotCapturedConformance(t *testing.T, c *conformance) {
	sess, _ := c.s.Transaction(t, map[string]any{"status": "AUTHORIZED"})
	r := c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": sess}, want: 409})
	problemOf(t, r, refund.CodeNotCaptured)
}

// testValidationConformance: 422, invalid fields and broken business rules.
func testValidationConformance(t *testing.T, c *conformance) {
	tx := c.newCardTransaction(t)
	sessionID, txID := tx.SessionID, tx.ID
	// Field validation: every invalid field is listed in errors[].
	r := c.do(t, call{method: "POST", path: "/v1/refunds", requestInvalid: true, want: 422, body: map[string]any{
		"sessionId": sessionID, "description": "", "reasonCode": "BORED", "reference": strings.Repeat("r", 41),
		"refundValue": map[string]any{"amount": 0, "currency": "EUR"}}})
	p := problemOf(t, r, refund.CodeValidation)
	fields := map[string]bool{}
	for _, fe := range p.Errors {
		fields[fe.Field] = true
	}
	for _, f := range []string{"description", "reasonCode", "reference", "refundValue.amount"} {
		if !fields[f] {
			t.Errorf("errors[] lacks %s: %s", f, r.Body)
		}
	}
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{}, requestInvalid: true, want: 422})
	problemOf(t, r, refund.CodeValidation)
	// Business rules on a well-formed request.
	r = c.do(t, call{method: "POST", path: "/v1/refunds", want: 422, body: map[string]any{"originalTransactionId": txID,
		"refundValue": map[string]any{"amount": 99999999, "currency": "EUR"}}})
	problemOf(t, r, refund.CodeAmountInsufficient)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", want: 422, body: map[string]any{"originalTransactionId": txID,
		"refundValue": map[string]any{"amount": 100, "currency": "USD"}}})
	problemOf(t, r, refund.CodeCurrencyMismatch)
	r = c.do(t, call{method: "POST", path: "/v1/transactions", requestInvalid: true, want: 422, body: map[string]any{"sessionId": sessionID,
		"provider": "", "method": "cheque", "amount": 0, "currency": "eur", "status": "REFUNDED", "providerReference": ""}})
	if p := problemOf(t, r, refund.CodeValidation); len(p.Errors) < 6 {
		t.Errorf("errors = %+v", p.Errors)
	}
}

// testScopesConformance: each operation's x-required-scope is the scope the
// server checks: a key with every other scope is 403, a key with only that
// scope is not.
func testScopesConformance(t *testing.T, c *conformance) {
	s := c.s
	only := map[string]string{refund.ScopeOps: s.OpsKey}
	allBut := map[string]string{refund.ScopeOps: s.MerchantKey}
	for _, scope := range refund.MerchantScopes {
		_, only[scope] = s.NewMerchantKey(t, nil, scope)
		_, allBut[scope] = s.NewMerchantKey(t, nil, slices.DeleteFunc(slices.Clone(refund.MerchantScopes), func(o string) bool { return o == scope })...)
	}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			scope, _ := op.Extensions["x-required-scope"].(string)
			if scope == "" {
				continue
			}
			p := pathParam.ReplaceAllStringFunc(path, func(string) string { return uuid.Must(uuid.NewV7()).String() })
			denied := []string{allBut[scope]}
			if scope != refund.ScopeOps {
				denied = append(denied, s.OpsKey)
			}
			for _, k := range denied {
				problemOf(t, c.do(t, call{method: method, path: p, auth: "bearer:" + k, requestUnchecked: true, want: 403}), server.CodeForbidden)
			}
			if r := c.do(t, call{method: method, path: p, auth: "bearer:" + only[scope], requestUnchecked: true}); r.Status == 401 || r.Status == 403 {
				t.Errorf("%s %s with a key of scope %s only: %d %s", method, path, scope, r.Status, r.Body)
			}
		}
	}
}

// testWebhookEndpointsConformance: create, list, read, rotate and delete
// endpoints, and the refusals, on a merchant of its own (its list holds
// exactly the endpoints made here).
func testWebhookEndpointsConformance(t *testing.T, c *conformance) {
	m := c.newMerchant(t)
	recv := newHookReceiver(t)
	var epOK, epFlaky, epGone, epCanceledOnly server.WebhookEndpointObject

	key := ikey()
	body := map[string]any{"url": recv.url("/ok"), "eventTypes": []string{refund.EventRefundCreated, refund.EventRefundSucceeded}}
	r := m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: body, headers: []string{"Idempotency-Key", key}, want: 201})
	r.JSON(t, &epOK)
	if !strings.HasPrefix(epOK.Secret, webhooks.SecretPrefix) || epOK.Status != "ENABLED" || len(epOK.EventTypes) != 2 {
		t.Fatalf("created = %s", r.Body)
	}
	r = m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: body, headers: []string{"Idempotency-Key", key}, want: 201})
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("replay lacks Idempotent-Replayed: true")
	}
	body["url"] = recv.url("/other")
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: body, headers: []string{"Idempotency-Key", key}, want: 422}),
		server.CodeIdempotencyMismatch)
	// eventTypes omitted: every type.
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/flaky")}, want: 201}).JSON(t, &epFlaky)
	if !slices.Equal(epFlaky.EventTypes, refund.EventTypes) {
		t.Errorf("eventTypes = %v, want all", epFlaky.EventTypes)
	}
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/gone")}, want: 201}).JSON(t, &epGone)
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", want: 201,
		body: map[string]any{"url": recv.url("/canceled"), "eventTypes": []string{refund.EventRefundCanceled}}}).JSON(t, &epCanceledOnly)

	var list struct{ Data []map[string]any }
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints", want: 200}).JSON(t, &list)
	if len(list.Data) != 4 {
		t.Fatalf("list has %d endpoints, want 4", len(list.Data))
	}
	for _, e := range list.Data {
		if _, ok := e["secret"]; ok {
			t.Errorf("list shows a secret: %v", e)
		}
	}
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + epOK.ID.String(), auth: "basic", want: 200})

	// Rotation: a grace period shows previousSecretExpiresAt; 0 retires the old secret at once.
	var rotated server.WebhookEndpointObject
	rotate := "/v1/webhook-endpoints/" + epOK.ID.String() + "/rotate-secret"
	m.do(t, call{method: "POST", path: rotate, body: map[string]any{"gracePeriodSeconds": 3600}, headers: []string{"Idempotency-Key", ikey()}, want: 200}).JSON(t, &rotated)
	if rotated.Secret == epOK.Secret || rotated.PreviousSecretExpiresAt == nil {
		t.Errorf("rotated = %+v", rotated)
	}
	var got server.WebhookEndpointObject
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + epOK.ID.String(), want: 200}).JSON(t, &got)
	if got.PreviousSecretExpiresAt == nil || got.Secret != "" {
		t.Errorf("after rotation = %+v", got)
	}
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints/" + epFlaky.ID.String() + "/rotate-secret", want: 200})
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints/" + epFlaky.ID.String() + "/rotate-secret", body: map[string]any{"gracePeriodSeconds": 0}, want: 200})

	// 400, 422, 404.
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/x"), "secret": "whsec_mine"}, requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: `{"url": `, requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/not-a-uuid", requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, m.do(t, call{method: "POST", path: rotate, body: map[string]any{"grace": 1}, requestInvalid: true, want: 400}), server.CodeMalformed)
	r = m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", requestInvalid: true, want: 422,
		body: map[string]any{"url": "ftp://user:pw@example.com/#frag", "eventTypes": []string{"refund.exploded", refund.EventRefundCreated, refund.EventRefundCreated}}})
	p := problemOf(t, r, refund.CodeValidation)
	fields := map[string]bool{}
	for _, fe := range p.Errors {
		fields[fe.Field] = true
	}
	for _, f := range []string{"url", "eventTypes[0]", "eventTypes[2]"} {
		if !fields[f] {
			t.Errorf("errors[] lacks %s: %s", f, r.Body)
		}
	}
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/x"), "eventTypes": []string{}}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, m.do(t, call{method: "POST", path: rotate, body: map[string]any{"gracePeriodSeconds": 604801}, requestInvalid: true, want: 422}), refund.CodeValidation)
	missing := uuid.Must(uuid.NewV7()).String()
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + missing, want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "DELETE", path: "/v1/webhook-endpoints/" + missing, want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints/" + missing + "/rotate-secret", want: 404}), refund.CodeWebhookEndpointNotFound)
	// Another merchant's endpoint is 404, never 403.
	_, other := c.s.NewMerchantKey(t, nil)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + epOK.ID.String(), auth: "bearer:" + other, want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints", auth: "none", requestInvalid: true, want: 401}), server.CodeUnauthorized)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints", auth: "ops", want: 403}), server.CodeForbidden)

	// Delete: 204, then 404.
	var doomed server.WebhookEndpointObject
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/doomed")}, want: 201}).JSON(t, &doomed)
	m.do(t, call{method: "DELETE", path: "/v1/webhook-endpoints/" + doomed.ID.String(), want: 204})
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + doomed.ID.String(), want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "DELETE", path: "/v1/webhook-endpoints/" + doomed.ID.String(), want: 404}), refund.CodeWebhookEndpointNotFound)

	// 16 live endpoints per merchant; the 17th is 409.
	_, full := c.s.NewMerchantKey(t, nil)
	for i := range refund.MaxWebhookEndpoints {
		m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", auth: "bearer:" + full, body: map[string]any{"url": fmt.Sprintf("https://merchant.example/hooks/%d", i)}, want: 201})
	}
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", auth: "bearer:" + full, body: map[string]any{"url": "https://merchant.example/hooks/17"}, want: 409}),
		refund.CodeWebhookEndpointLimit)
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints", auth: "bearer:" + full, want: 200})
}

// testEventsConformance: a refund after the endpoints exist is delivered
// to /ok, /flaky and /gone; its events are listed, read and redelivered.
func testEventsConformance(t *testing.T, c *conformance) {
	m := c.newHookedMerchant(t)
	tx := m.newCardTransaction(t)
	r := m.do(t, call{method: "POST", path: "/v1/refunds", want: 202, body: map[string]any{"originalTransactionId": tx.ID, "refundValue": map[string]any{"amount": 1000}}})
	var ref refund.Object
	r.JSON(t, &ref)
	hookRefundID := ref.TransactionID.String()
	m.waitSucceeded(t, hookRefundID)

	var page struct {
		Data       []server.EventObject `json:"data"`
		NextCursor string               `json:"nextCursor"`
	}
	m.do(t, call{method: "GET", path: "/v1/events?refundId=" + hookRefundID, want: 200}).JSON(t, &page)
	if len(page.Data) != 2 || page.Data[0].Type != refund.EventRefundSucceeded || page.Data[1].Type != refund.EventRefundCreated {
		t.Fatalf("events of the refund = %+v", page.Data)
	}
	createdEvent := page.Data[1]
	// A second succeeded refund: the merchant's refund.succeeded events then page.
	m.newSucceededRefund(t)
	m.do(t, call{method: "GET", path: "/v1/events?limit=1&type=" + refund.EventRefundSucceeded, want: 200}).JSON(t, &page)
	if len(page.Data) != 1 || page.NextCursor == "" {
		t.Fatalf("first page = %+v", page)
	}
	m.do(t, call{method: "GET", path: "/v1/events?limit=1&type=" + refund.EventRefundSucceeded + "&cursor=" + page.NextCursor, want: 200})
	m.do(t, call{method: "GET", path: "/v1/events?limit=100", auth: "basic", want: 200})

	// The flaky endpoint's attempts: no answer (statusCode null), 500, then 200.
	detail := m.waitEvent(t, createdEvent.ID.String(), func(d server.EventDetail) bool {
		return len(attemptsTo(d, m.flaky.ID)) == 3 && len(attemptsTo(d, m.ok.ID)) == 1
	})
	fl := attemptsTo(detail, m.flaky.ID)
	if fl[0].StatusCode != nil || fl[0].Error == "" || fl[1].StatusCode == nil || *fl[1].StatusCode != 500 || !fl[2].Succeeded {
		t.Errorf("flaky attempts = %+v", fl)
	}
	r = m.do(t, call{method: "GET", path: "/v1/events/" + createdEvent.ID.String(), want: 200})
	if !strings.Contains(string(r.Body), `"statusCode":null`) {
		t.Errorf("no attempt with statusCode null: %s", r.Body)
	}

	// The 410 (to whichever event came first) disabled the endpoint.
	m.recv.waitAny(t, "/gone")
	m.waitEndpointDisabled(t, m.gone.ID.String())
	var gone server.WebhookEndpointObject
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + m.gone.ID.String(), want: 200}).JSON(t, &gone)
	if gone.Status != "DISABLED" || gone.DisabledAt == nil || gone.DisabledReason == "" {
		t.Errorf("endpoint answering 410 = %+v", gone)
	}

	// Redeliver to one endpoint (replayed with the same key), then to all.
	key := ikey()
	redeliver := "/v1/events/" + createdEvent.ID.String() + "/redeliver"
	var res server.RedeliveryResult
	m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": m.ok.ID}, headers: []string{"Idempotency-Key", key}, want: 202}).JSON(t, &res)
	if res.EventID != createdEvent.ID || len(res.Deliveries) != 1 || res.Deliveries[0].EndpointID != m.ok.ID {
		t.Errorf("redelivery = %+v", res)
	}
	r = m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": m.ok.ID}, headers: []string{"Idempotency-Key", key}, want: 202})
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("replay lacks Idempotent-Replayed: true")
	}
	m.recv.wait(t, "/ok", createdEvent.ID.String(), 2)
	m.do(t, call{method: "POST", path: redeliver, want: 202}).JSON(t, &res)
	if len(res.Deliveries) != 2 { // /ok and /flaky: /gone is disabled, /canceled not subscribed
		t.Errorf("redelivery to all = %+v", res)
	}
	m.recv.wait(t, "/ok", createdEvent.ID.String(), 3)
	m.recv.wait(t, "/flaky", createdEvent.ID.String(), 4)
	m.waitEvent(t, createdEvent.ID.String(), func(d server.EventDetail) bool {
		return len(attemptsTo(d, m.ok.ID)) == 3 && len(attemptsTo(d, m.flaky.ID)) == 4
	})
	m.do(t, call{method: "GET", path: "/v1/events/" + createdEvent.ID.String(), want: 200})

	// Refusals.
	problemOf(t, m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": m.gone.ID}, want: 409}), refund.CodeWebhookEndpointDisabled)
	r = m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": m.canceledOnly.ID}, want: 422})
	if p := problemOf(t, r, refund.CodeValidation); len(p.Errors) != 1 || p.Errors[0].Field != "endpointId" {
		t.Errorf("errors = %+v", p.Errors)
	}
	missing := uuid.Must(uuid.NewV7()).String()
	problemOf(t, m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": missing}, want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/events/" + missing + "/redeliver", want: 404}), refund.CodeEventNotFound)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/events/" + missing, want: 404}), refund.CodeEventNotFound)
	_, other := c.s.NewMerchantKey(t, nil)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/events/" + createdEvent.ID.String(), auth: "bearer:" + other, want: 404}), refund.CodeEventNotFound)
	problemOf(t, m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": "nope"}, requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"to": "all"}, requestInvalid: true, want: 400}), server.CodeMalformed)
	for _, q := range []string{"type=refund.exploded", "refundId=nope", "limit=0", "limit=101", "cursor=nope"} {
		problemOf(t, m.do(t, call{method: "GET", path: "/v1/events?" + q, requestInvalid: true, want: 400}), server.CodeMalformed)
	}
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/events/not-a-uuid", requestInvalid: true, want: 400}), server.CodeMalformed)
}

// testOpsConformance: the ops API's list, show, refused actions,
// redelivery and audit.
func testOpsConformance(t *testing.T, c *conformance) {
	s := c.s
	hook := c.newDeliveredRefund(t)
	hookRefundID, createdEvent := hook.refundID, hook.created
	// Two succeeded refunds of the stack's merchant: its list below pages,
	// and the actions refused on the first one are its only audit entries.
	refundID := c.newSucceededRefund(t)
	c.newSucceededRefund(t)

	var page struct {
		Data       []ops.Refund `json:"data"`
		NextCursor string       `json:"nextCursor"`
	}
	c.do(t, call{method: "GET", path: "/v1/ops/refunds", auth: "ops", want: 200}).JSON(t, &page)
	q := "/v1/ops/refunds?status=SUCCEEDED&provider=cardpay&stuck=false&merchantId=" + s.MerchantID.String() + "&limit=1"
	c.do(t, call{method: "GET", path: q, auth: "ops", want: 200}).JSON(t, &page)
	if len(page.Data) != 1 || page.NextCursor == "" || page.Data[0].MerchantID != s.MerchantID {
		t.Fatalf("first page = %+v", page)
	}
	c.do(t, call{method: "GET", path: q + "&cursor=" + page.NextCursor, auth: "ops", want: 200})
	c.do(t, call{method: "GET", path: "/v1/ops/refunds?stuck=true&limit=200", auth: "ops", want: 200})

	// show: the refund whose events were delivered, with every kind of attempt.
	r := c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + hookRefundID, auth: "ops", want: 200})
	var d ops.RefundDetail
	r.JSON(t, &d)
	if len(d.Ledger) != 2 || len(d.Events) != 2 || len(d.WebhookAttempts) < 5 || d.Workflow.Status == nil ||
		d.Workflow.ExecutionStatus != "Completed" || d.Workflow.Status.Step != "done" {
		t.Errorf("show = %s", r.Body)
	}

	// Refused actions on a final refund, each audited.
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/retry", auth: "ops", headers: []string{"Idempotency-Key", ikey()}, want: 409}), refund.CodeNotRetryable)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/approve", auth: "ops", body: map[string]any{"reason": "looks fine"}, want: 409}), refund.CodeNotAwaitingApproval)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/reject", auth: "ops", body: map[string]any{"reason": "no"}, want: 409}), refund.CodeNotAwaitingApproval)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/cancel", auth: "ops", want: 409}), refund.CodeNotCancelable)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/resolve", auth: "ops",
		body: map[string]any{"status": "FAILED", "reason": "checked at the provider"}, want: 409}), refund.CodeNotResolvable)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/resolve", auth: "ops",
		body: map[string]any{"status": "REVERSED", "reason": "x"}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/reject", auth: "ops", body: map[string]any{}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/reject", auth: "ops", body: map[string]any{"reason": " "}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/retry", auth: "ops", body: map[string]any{"why": "x"}, requestInvalid: true, want: 400}), server.CodeMalformed)
	missing := uuid.Must(uuid.NewV7()).String()
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + missing, auth: "ops", want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + missing + "/approve", auth: "ops", want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/events/" + missing + "/redeliver", auth: "ops", want: 404}), refund.CodeEventNotFound)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/refunds/not-a-uuid", auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	for _, q := range []string{"status=LOST", "stuck=maybe", "limit=0", "limit=201", "merchantId=nope"} {
		problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/refunds?" + q, auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	}
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/refunds", want: 403}), server.CodeForbidden)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/audit", auth: "none", requestInvalid: true, want: 401}), server.CodeUnauthorized)

	// Redeliver across merchants.
	key := ikey()
	var res ops.ActionResult
	c.do(t, call{method: "POST", path: "/v1/ops/events/" + createdEvent.ID.String() + "/redeliver", auth: "ops", headers: []string{"Idempotency-Key", key}, want: 202}).JSON(t, &res)
	if res.Action != refund.AuditRedeliver || res.EventID == nil || *res.EventID != createdEvent.ID || res.RefundID.String() != hookRefundID {
		t.Errorf("ops redeliver = %+v", res)
	}
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/events/" + createdEvent.ID.String() + "/redeliver", auth: "ops", body: map[string]any{"again": true}, headers: []string{"Idempotency-Key", key}, want: 422}),
		server.CodeIdempotencyMismatch)
	hook.recv.wait(t, "/ok", createdEvent.ID.String(), 2) // the fixture's delivery, then this one

	// The audit: newest first, refusals recorded with their code.
	var audit struct {
		Data       []refund.AuditEntry `json:"data"`
		NextCursor string              `json:"nextCursor"`
	}
	c.do(t, call{method: "GET", path: "/v1/ops/audit?refundId=" + refundID, auth: "ops", want: 200}).JSON(t, &audit)
	if len(audit.Data) != 8 || audit.Data[len(audit.Data)-1].Action != refund.AuditRetry ||
		!strings.Contains(string(audit.Data[len(audit.Data)-1].Detail), refund.CodeNotRetryable) {
		t.Errorf("audit of the refund = %+v", audit.Data)
	}
	c.do(t, call{method: "GET", path: "/v1/ops/audit?limit=2", auth: "ops", want: 200}).JSON(t, &audit)
	if len(audit.Data) != 2 || audit.NextCursor == "" {
		t.Fatalf("audit first page = %+v", audit)
	}
	c.do(t, call{method: "GET", path: "/v1/ops/audit?limit=2&cursor=" + audit.NextCursor, auth: "ops", want: 200})
	c.do(t, call{method: "GET", path: "/v1/ops/audit?limit=200", auth: "ops", want: 200})
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/audit?limit=0", auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/audit?refundId=nope", auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + refundID, auth: "ops", want: 200})
}

// testOpsApprovalConformance: refunds above a merchant's approval
// threshold wait for ops, who approve, reject or cancel them.
func testOpsApprovalConformance(t *testing.T, c *conformance) {
	s := c.s
	threshold := int64(1000)
	_, key := s.NewMerchantKey(t, &threshold)
	auth := "bearer:" + key
	r := c.do(t, call{method: "POST", path: "/v1/sessions", auth: auth, want: 201})
	var sess struct{ SessionID string }
	r.JSON(t, &sess)
	c.do(t, call{method: "POST", path: "/v1/transactions", auth: auth, want: 201, body: map[string]any{"sessionId": sess.SessionID,
		"provider": "cardpay", "method": "card", "amount": 10000, "currency": "EUR", "status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8]}})
	awaiting := func() string {
		r := c.do(t, call{method: "POST", path: "/v1/refunds", auth: auth, want: 202, body: map[string]any{"sessionId": sess.SessionID, "refundValue": map[string]any{"amount": 2000}}})
		var ref refund.Object
		r.JSON(t, &ref)
		if !ref.RequiresApproval {
			t.Fatalf("refund above the threshold = %s", r.Body)
		}
		id := ref.TransactionID.String()
		waitOps(t, s, id, func(d ops.RefundDetail) bool {
			return d.Workflow.Status != nil && d.Workflow.Status.Step == "awaiting_approval"
		})
		return id
	}

	// retry of a refund awaiting approval is accepted (202); approve sends it.
	approved := awaiting()
	c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + approved, auth: "ops", want: 200})
	var res ops.ActionResult
	c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + approved + "/retry", auth: "ops", want: 202}).JSON(t, &res)
	if res.Action != refund.AuditRetry || res.Refund == nil || res.WorkflowID == "" {
		t.Errorf("retry = %+v", res)
	}
	c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + approved + "/approve", auth: "ops", body: map[string]any{"reason": "checked with the merchant"},
		headers: []string{"Idempotency-Key", ikey()}, want: 200}).JSON(t, &res)
	if res.Action != refund.AuditApprove || res.Refund == nil {
		t.Errorf("approve = %+v", res)
	}
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + approved + "/approve", auth: "ops", want: 409}), refund.CodeNotAwaitingApproval)

	rejected := awaiting()
	c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + rejected + "/reject", auth: "ops", body: map[string]any{"reason": "amount does not match the return"}, want: 200}).JSON(t, &res)
	if res.Action != refund.AuditReject {
		t.Errorf("reject = %+v", res)
	}

	canceled := awaiting()
	c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + canceled + "/cancel", auth: "ops", body: map[string]any{"reason": "merchant asked"}, want: 200}).JSON(t, &res)
	if res.Action != refund.AuditCancel || res.Refund == nil || res.Refund.Status != refund.StatusCanceled {
		t.Errorf("cancel = %+v", res)
	}
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + canceled + "/retry", auth: "ops", want: 409}), refund.CodeNotRetryable)

	for id, want := range map[string]refund.Status{approved: refund.StatusSucceeded, rejected: refund.StatusCanceled, canceled: refund.StatusCanceled} {
		waitOps(t, s, id, func(d ops.RefundDetail) bool { return d.Refund.Status == want })
	}
	c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + rejected, auth: "ops", want: 200})
	c.do(t, call{method: "GET", path: "/v1/ops/audit?refundId=" + approved, auth: "ops", want: 200})
}

// testRefundDriftConformance: the validator itself must catch drift: a
// response missing a required field or carrying a wrong type or an unknown
// field fails.
func testRefundDriftConformance(t *testing.T, c *conformance) {
	refundID := c.newSucceededRefund(t)
	req, _ := http.NewRequest("GET", c.s.APIURL+"/v1/refunds/"+refundID, nil)
	req.Header.Set("Authorization", "Bearer "+c.key)
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	reqInput := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.opts}
	good := c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, want: 200})
	mutations := map[string]func(m map[string]any){
		"missing status":       func(m map[string]any) { delete(m, "status") },
		"attempts as a string": func(m map[string]any) { m["attempts"] = "1" },
		"unknown status":       func(m map[string]any) { m["status"] = "DONE" },
		"unknown field":        func(m map[string]any) { m["secret"] = "x" },
		"bad refundValue":      func(m map[string]any) { m["refundValue"] = map[string]any{"amount": 1} },
	}
	for name, mutate := range mutations {
		var m map[string]any
		if err := json.Unmarshal(good.Body, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		bad, _ := json.Marshal(m)
		if err := c.validateResponse(reqInput, 200, good.Header, bad); err == nil {
			t.Errorf("%s: the document accepts a drifted response", name)
		}
	}
	h := good.Header.Clone()
	h.Set("Content-Type", "text/plain")
	if err := c.validateResponse(reqInput, 200, h, good.Body); err == nil {
		t.Error("the document accepts a response with an undeclared content type")
	}
	if err := c.validateResponse(reqInput, 418, good.Header, good.Body); err == nil {
		t.Error("the document accepts an undocumented status")
	}
}

// testWebhookDriftConformance: the schemas of endpoints, events and the
// ops view of a refund catch drift too.
func testWebhookDriftConformance(t *testing.T, c *conformance) {
	hook := c.newDeliveredRefund(t)
	epOK, createdEvent, hookRefundID := hook.ok, hook.created, hook.refundID
	ep := hook.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + epOK.ID.String(), want: 200})
	c.rejectsDrift(t, "GET", "/v1/webhook-endpoints/"+epOK.ID.String(), ep, map[string]func(m map[string]any){
		"secret shown":              func(m map[string]any) { m["secret"] = epOK.Secret },
		"disabled without the time": func(m map[string]any) { m["status"] = "DISABLED" },
		"enabled with a reason":     func(m map[string]any) { m["disabledReason"] = "gone" },
		"no event types":            func(m map[string]any) { m["eventTypes"] = []any{} },
		"unknown event type":        func(m map[string]any) { m["eventTypes"] = []any{"refund.exploded"} },
		"missing url":               func(m map[string]any) { delete(m, "url") },
	})
	ev := hook.do(t, call{method: "GET", path: "/v1/events/" + createdEvent.ID.String(), want: 200})
	c.rejectsDrift(t, "GET", "/v1/events/"+createdEvent.ID.String(), ev, map[string]func(m map[string]any){
		"attempt without statusCode": func(m map[string]any) { delete(dig(m, "attempts", 0), "statusCode") },
		"statusCode as a string":     func(m map[string]any) { dig(m, "attempts", 0)["statusCode"] = "200" },
		"refund without status":      func(m map[string]any) { delete(dig(m, "data", "refund"), "status") },
		"data not wrapped":           func(m map[string]any) { m["data"] = dig(m, "data", "refund") },
		"sequence 0":                 func(m map[string]any) { m["sequence"] = 0 },
		"unknown field":              func(m map[string]any) { m["merchantId"] = hook.merchantID },
	})
	show := c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + hookRefundID, auth: "ops", want: 200})
	c.rejectsDrift(t, "GET", "/v1/ops/refunds/"+hookRefundID, show, map[string]func(m map[string]any){
		"refund without merchantId": func(m map[string]any) { delete(dig(m, "refund"), "merchantId") },
		"unknown step":              func(m map[string]any) { dig(m, "workflow", "status")["step"] = "napping" },
		"status query missing":      func(m map[string]any) { delete(dig(m, "workflow"), "status") },
		"unknown ledger kind":       func(m map[string]any) { dig(m, "ledger", 0)["kind"] = "HOLD" },
		"attempt statusCode null":   func(m map[string]any) { dig(m, "webhookAttempts", 0)["statusCode"] = nil },
		"audit missing":             func(m map[string]any) { delete(m, "audit") },
	})
	// A null status query (workflow gone) is allowed.
	var m map[string]any
	show.JSON(t, &m)
	dig(m, "workflow")["status"] = nil
	dig(m, "workflow")["note"] = "workflow not found"
	nullStatus, _ := json.Marshal(m)
	if err := c.validateResponse(c.input(t, "GET", "/v1/ops/refunds/"+hookRefundID), 200, show.Header, nullStatus); err != nil {
		t.Errorf("the document refuses a null workflow status: %v", err)
	}
	h := http.Header{"Content-Type": {"text/plain; version=0.0.4; charset=utf-8"}, "X-Request-Id": {"r1"}}
	if err := c.validateResponse(c.input(t, "GET", "/metrics"), 200, h, []byte("<html>metrics</html>")); err == nil {
		t.Error("the document accepts a /metrics answer that is not in the Prometheus text format")
	}
}

// Fixtures of TestOpenAPIConformance: each subtest makes the merchants,
// payments, refunds and webhook endpoints it needs, so none depends on
// another having run.

// newMerchant is c calling as a new merchant, whose lists hold only what
// the subtest made.
func (c *conformance) newMerchant(t *testing.T) *conformance {
	t.Helper()
	m := *c
	m.merchantID, m.key = c.s.NewMerchantKey(t, nil)
	return &m
}

// client calls the API as c's merchant, for set-up the document need not check.
func (c *conformance) client() *rig.Client { return rig.NewClient(c.s.APIURL, c.key) }

// cardBasket is what the card payments of the fixtures bought: two items
// and a gift-card redemption.
var cardBasket = map[string]any{
	"lineItems":           []map[string]any{{"id": "sku-1", "amount": 2000, "quantity": 2}, {"id": "sku-2", "amount": 1000, "quantity": 1}},
	"giftCardRedemptions": []map[string]any{{"id": "gc-1", "amount": 1500}},
}

// newCardTransaction registers a session and a captured cardpay payment of
// 10000 EUR with cardBasket.
func (c *conformance) newCardTransaction(t *testing.T) rig.Transaction {
	t.Helper()
	tx, err := c.client().CreateTransaction(context.Background(), cardBasket)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// newRefund creates a refund of amount on tx and returns its id.
func (c *conformance) newRefund(t *testing.T, tx rig.Transaction, amount int64) string {
	t.Helper()
	id, err := c.client().Refund(context.Background(), tx, amount)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newSucceededRefund refunds 2000 of a new card payment and waits until the
// provider took it.
func (c *conformance) newSucceededRefund(t *testing.T) string {
	t.Helper()
	id := c.newRefund(t, c.newCardTransaction(t), 2000)
	c.waitSucceeded(t, id)
	return id
}

// waitSucceeded waits until the refund, of any merchant, is SUCCEEDED.
func (c *conformance) waitSucceeded(t *testing.T, id string) {
	t.Helper()
	waitOps(t, c.s, id, func(d ops.RefundDetail) bool { return d.Refund.Status == refund.StatusSucceeded })
}

// hookedMerchant is a new merchant with webhook endpoints on a receiver of
// its own: ok gets refund.created and refund.succeeded, flaky and gone get
// every type, canceledOnly gets refund.canceled only.
type hookedMerchant struct {
	*conformance // calls as the merchant
	recv         *hookReceiver

	ok, flaky, gone, canceledOnly server.WebhookEndpointObject
}

func (c *conformance) newHookedMerchant(t *testing.T) *hookedMerchant {
	t.Helper()
	m := &hookedMerchant{conformance: c.newMerchant(t), recv: newHookReceiver(t)}
	for _, ep := range []struct {
		into  *server.WebhookEndpointObject
		path  string
		types []string
	}{
		{&m.ok, "/ok", []string{refund.EventRefundCreated, refund.EventRefundSucceeded}},
		{&m.flaky, "/flaky", refund.EventTypes},
		{&m.gone, "/gone", refund.EventTypes},
		{&m.canceledOnly, "/canceled", []string{refund.EventRefundCanceled}},
	} {
		body := map[string]any{"url": m.recv.url(ep.path), "eventTypes": ep.types}
		rig.Must(t, c.s.DoWithKey(t, m.key, "POST", "/v1/webhook-endpoints", body), http.StatusCreated).JSON(t, ep.into)
	}
	return m
}

// deliveredRefund is a succeeded refund of a hooked merchant whose
// refund.created event reached ok, and flaky at its third attempt, and
// whose 410 disabled gone.
type deliveredRefund struct {
	*hookedMerchant
	refundID string
	created  server.EventObject // the refund's refund.created event
}

func (c *conformance) newDeliveredRefund(t *testing.T) deliveredRefund {
	t.Helper()
	m := c.newHookedMerchant(t)
	d := deliveredRefund{hookedMerchant: m, refundID: m.newSucceededRefund(t)}
	var page struct{ Data []server.EventObject }
	rig.Must(t, c.s.DoWithKey(t, m.key, "GET", "/v1/events?type="+refund.EventRefundCreated+"&refundId="+d.refundID, nil), http.StatusOK).JSON(t, &page)
	if len(page.Data) != 1 {
		t.Fatalf("refund.created events of the refund = %+v", page.Data)
	}
	d.created = page.Data[0]
	m.waitEvent(t, d.created.ID.String(), func(e server.EventDetail) bool {
		return len(attemptsTo(e, m.flaky.ID)) == 3 && len(attemptsTo(e, m.ok.ID)) == 1
	})
	m.waitEndpointDisabled(t, m.gone.ID.String())
	return d
}

// hookReceiver is a merchant's webhook receiver. Per path and event: /ok
// answers 200; /flaky first cuts the connection without an answer, then
// answers 500, then 200; /gone answers 410; anything else 200.
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]int // path + " " + event id → requests
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{seen: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		h.mu.Lock()
		key := r.URL.Path + " " + r.Header.Get(webhooks.EventIDHeader)
		h.seen[key]++
		n := h.seen[key]
		h.mu.Unlock()
		switch {
		case r.URL.Path == "/flaky" && n == 1:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		case r.URL.Path == "/flaky" && n == 2:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "receiver says no")
		case r.URL.Path == "/gone":
			w.WriteHeader(http.StatusGone)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) url(path string) string { return h.srv.URL + path }

// wait waits until path got n requests for the event.
func (h *hookReceiver) wait(t *testing.T, path, eventID string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.mu.Lock()
		got := h.seen[path+" "+eventID]
		h.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s got %d deliveries of event %s, want %d", path, got, eventID, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAny waits until path got a request.
func (h *hookReceiver) waitAny(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.mu.Lock()
		got := 0
		for k, n := range h.seen {
			if strings.HasPrefix(k, path+" ") {
				got += n
			}
		}
		h.mu.Unlock()
		if got > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s got no delivery", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitEvent polls GET /v1/events/{id} (c's merchant) until ok.
func (c *conformance) waitEvent(t *testing.T, id string, ok func(server.EventDetail) bool) server.EventDetail {
	t.Helper()
	var d server.EventDetail
	deadline := time.Now().Add(30 * time.Second)
	for {
		rig.Must(t, c.s.DoWithKey(t, c.key, "GET", "/v1/events/"+id, nil), http.StatusOK).JSON(t, &d)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s: attempts = %+v", id, d.Attempts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEndpointDisabled polls GET /v1/webhook-endpoints/{id} (c's merchant)
// until the endpoint is DISABLED, for 30 s at most; the caller checks.
func (c *conformance) waitEndpointDisabled(t *testing.T, id string) {
	t.Helper()
	var ep server.WebhookEndpointObject
	for deadline := time.Now().Add(30 * time.Second); ep.Status != "DISABLED" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		rig.Must(t, c.s.DoWithKey(t, c.key, "GET", "/v1/webhook-endpoints/"+id, nil), http.StatusOK).JSON(t, &ep)
	}
}

// attemptsTo is the event's attempts to one endpoint, oldest first.
func attemptsTo(d server.EventDetail, endpoint uuid.UUID) []server.WebhookAttemptObject {
	var out []server.WebhookAttemptObject
	for _, a := range d.Attempts {
		if a.EndpointID == endpoint {
			out = append(out, a)
		}
	}
	return out
}

// waitOps polls GET /v1/ops/refunds/{id} until ok.
func waitOps(t *testing.T, s *rig.Stack, id string, ok func(ops.RefundDetail) bool) ops.RefundDetail {
	t.Helper()
	var d ops.RefundDetail
	deadline := time.Now().Add(30 * time.Second)
	for {
		rig.Must(t, s.DoWithKey(t, s.OpsKey, "GET", "/v1/ops/refunds/"+id, nil), http.StatusOK).JSON(t, &d)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("refund %s: status %s, workflow %+v", id, d.Refund.Status, d.Workflow)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
