package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/store"
)

// undocumentedPrefixes are route groups whose paths are not in the document
// yet. Remove a prefix when its paths are added to server/openapi.json.
var undocumentedPrefixes = []string{"/v1/webhook", "/v1/events", "/v1/ops", "/metrics"}

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

	// Every implemented route is documented, and every documented operation is implemented.
	e, ok := server.New(server.Deps{}).Handler().(*echo.Echo)
	if !ok {
		t.Fatal("Handler is not an *echo.Echo")
	}
	implemented := map[string]bool{}
	for _, r := range e.Routes() {
		if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, r.Method) {
			continue // group-level not-found handlers
		}
		path := echoPathToOpenAPI(r.Path)
		if slices.ContainsFunc(undocumentedPrefixes, func(p string) bool { return strings.HasPrefix(path, p) }) {
			continue
		}
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
	for _, code := range []string{server.CodeMalformed, server.CodeUnauthorized, server.CodeForbidden, server.CodeNotFound,
		server.CodeIdempotencyMismatch, server.CodeIdempotencyInFlight, server.CodeUnavailable, server.CodeInternal,
		server.CodeMethodNotAllowed, store.CodeSessionNotFound, store.CodeTransactionNotFound, store.CodeRefundNotFound,
		store.CodeNotCaptured, store.CodeFullyRefunded, store.CodeNotCancelable, store.CodeAmountInsufficient,
		store.CodeCurrencyMismatch, store.CodeAmbiguous, store.CodeMethodUnavailable, store.CodeValidation} {
		if !slices.Contains(codes, any(code)) {
			t.Errorf("error code %s is not in the Problem.code enum", code)
		}
	}
}

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
	s      *testenv.Stack
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
}

func newConformance(t *testing.T, s *testenv.Stack) *conformance {
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
	return &conformance{s: s, doc: doc, router: router, opts: opts}
}

// call describes one request.
type call struct {
	method, path string
	body         any    // nil, string, []byte or a JSON value
	auth         string // "" = the merchant's bearer key; "none"; "basic"; or "bearer:<key>"
	headers      []string
	// requestInvalid: the request deliberately breaks the document (the
	// server must reject it too).
	requestInvalid bool
	want           int
}

// do validates the request, sends it, checks the status and validates the
// response against the document.
func (c *conformance) do(t *testing.T, in call) testenv.Response {
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
		req, err := http.NewRequest(in.method, c.s.APIURL+in.path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if in.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		switch {
		case in.auth == "":
			req.Header.Set("Authorization", "Bearer "+c.s.MerchantKey)
		case in.auth == "basic":
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.s.MerchantKey+":")))
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
	reqInput := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: c.opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), reqInput)
	switch {
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
	if resp.StatusCode != in.want {
		t.Fatalf("%s %s: status %d, want %d: %s", in.method, in.path, resp.StatusCode, in.want, body)
	}
	if err := c.validateResponse(reqInput, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("%s %s: %d response does not conform to the document: %v\n%s", in.method, in.path, resp.StatusCode, err, body)
	}
	return testenv.Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

func (c *conformance) validateResponse(reqInput *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) error {
	in := &openapi3filter.ResponseValidationInput{RequestValidationInput: reqInput, Status: status, Header: header, Options: c.opts}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// problemOf decodes a problem response and checks its code.
func problemOf(t *testing.T, r testenv.Response, code string) server.Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json", ct)
	}
	var p server.Problem
	r.JSON(t, &p)
	if p.Code != code {
		t.Fatalf("code %q, want %q: %s", p.Code, code, r.Body)
	}
	return p
}

func TestOpenAPIConformance(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	c := newConformance(t, s)
	ikey := func() string { return "oa-" + uuid.NewString() }

	t.Run("probes", func(t *testing.T) {
		c.do(t, call{method: "GET", path: "/healthz", auth: "none", want: 200})
		c.do(t, call{method: "GET", path: "/readyz", auth: "none", want: 200})
		r := c.do(t, call{method: "GET", path: "/openapi.json", auth: "none", want: 200})
		if !bytes.Equal(r.Body, server.OpenAPI()) {
			t.Error("GET /openapi.json does not serve the embedded document")
		}
	})

	// Upstream: a session and a captured card transaction with line items and a gift-card redemption.
	var sessionID, txID string
	t.Run("create session and transaction", func(t *testing.T) {
		r := c.do(t, call{method: "POST", path: "/v1/sessions", body: map[string]any{}, headers: []string{"Idempotency-Key", ikey()}, want: 201})
		var sess struct{ SessionID string }
		r.JSON(t, &sess)
		sessionID = sess.SessionID
		r = c.do(t, call{method: "POST", path: "/v1/transactions", headers: []string{"Idempotency-Key", ikey()}, want: 201,
			body: map[string]any{"sessionId": sessionID, "provider": "cardpay", "method": "card", "amount": 10000,
				"currency": "EUR", "status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8],
				"lineItems":           []map[string]any{{"id": "sku-1", "amount": 2000, "quantity": 2}, {"id": "sku-2", "amount": 1000, "quantity": 1}},
				"giftCardRedemptions": []map[string]any{{"id": "gc-1", "amount": 1500}}}})
		var tx server.TransactionObject
		r.JSON(t, &tx)
		txID = tx.TransactionID.String()
		c.do(t, call{method: "GET", path: "/v1/transactions/" + txID, want: 200})
	})
	if t.Failed() {
		t.FailNow()
	}

	// A mobile-money transaction with a payout destination: refunds go out as payouts.
	t.Run("payout transaction", func(t *testing.T) {
		r := c.do(t, call{method: "POST", path: "/v1/sessions", want: 201})
		var sess struct{ SessionID string }
		r.JSON(t, &sess)
		r = c.do(t, call{method: "POST", path: "/v1/transactions", want: 201,
			body: map[string]any{"sessionId": sess.SessionID, "provider": "momo", "method": "mobile_money", "amount": 5000,
				"currency": "KES", "status": "CAPTURED", "providerReference": "momo_" + uuid.NewString()[:8],
				"payoutDestination": map[string]any{"type": "mobile_money", "mobileNumber": "+254700000001", "network": "mpesa", "country": "KE"}}})
		r = c.do(t, call{method: "POST", path: "/v1/refunds", want: 202, body: map[string]any{"sessionId": sess.SessionID,
			"refundValue": map[string]any{"amount": 1000, "currency": "KES"}}})
		var ref store.RefundObject
		r.JSON(t, &ref)
		if ref.Method != store.MethodPayoutRefund {
			t.Errorf("method = %s, want %s", ref.Method, store.MethodPayoutRefund)
		}
	})

	var refundID string
	t.Run("create and retrieve refund", func(t *testing.T) {
		key := ikey()
		body := map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": 2000, "currency": "EUR"},
			"reason": "customer returned one item", "reasonCode": "RETURN", "description": "return of sku-1",
			"reference": "ret-42", "metadata": map[string]any{"orderId": "ord_1", "channel": "web"},
			"lineItems": []map[string]any{{"id": "sku-1", "quantity": 1}}}
		r := c.do(t, call{method: "POST", path: "/v1/refunds", body: body, headers: []string{"Idempotency-Key", key}, want: 202})
		var created store.RefundObject
		r.JSON(t, &created)
		if created.Status != store.StatusPending || created.OriginalTransactionID.String() != txID {
			t.Fatalf("created = %s", r.Body)
		}
		refundID = created.TransactionID.String()

		// The same key and body replay the 202 with Idempotent-Replayed.
		r = c.do(t, call{method: "POST", path: "/v1/refunds", body: body, headers: []string{"Idempotency-Key", key}, want: 202})
		if r.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay lacks Idempotent-Replayed: true")
		}
		// The same key with another body is 422 idempotency.mismatch.
		body["reason"] = "another reason"
		r = c.do(t, call{method: "POST", path: "/v1/refunds", body: body, headers: []string{"Idempotency-Key", key}, want: 422})
		problemOf(t, r, server.CodeIdempotencyMismatch)

		s.WaitRefund(t, refundID, 30*time.Second, store.StatusSucceeded)
		r = c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, want: 200})
		var done store.RefundObject
		r.JSON(t, &done)
		if done.CompletedAt == nil || done.ProviderReference == "" {
			t.Errorf("succeeded refund lacks completedAt or providerReference: %s", r.Body)
		}
		c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, auth: "basic", want: 200})
		c.do(t, call{method: "GET", path: "/v1/transactions/" + txID, want: 200})
	})
	if refundID == "" {
		t.FailNow()
	}

	t.Run("list refunds", func(t *testing.T) {
		// A second refund (full remaining amount of the gift card) gives the session two refunds.
		c.do(t, call{method: "POST", path: "/v1/refunds", want: 202, body: map[string]any{"originalTransactionId": txID,
			"targetType": "GIFT_CARD_REDEMPTION", "targetId": "gc-1"}})
		r := c.do(t, call{method: "GET", path: "/v1/refunds?sessionId=" + sessionID + "&limit=1", want: 200})
		var page struct {
			Data       []store.RefundObject `json:"data"`
			NextCursor string               `json:"nextCursor"`
		}
		r.JSON(t, &page)
		if len(page.Data) != 1 || page.NextCursor == "" {
			t.Fatalf("first page = %s", r.Body)
		}
		c.do(t, call{method: "GET", path: "/v1/refunds?sessionId=" + sessionID + "&limit=1&cursor=" + page.NextCursor, want: 200})
		from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		c.do(t, call{method: "GET", path: "/v1/refunds?status=SUCCEEDED&originalTransactionId=" + txID + "&createdFrom=" + from, want: 200})
		c.do(t, call{method: "GET", path: "/v1/refunds", want: 200})
	})

	t.Run("cancel a sent refund is 409", func(t *testing.T) {
		r := c.do(t, call{method: "POST", path: "/v1/refunds/" + refundID + "/cancel", headers: []string{"Idempotency-Key", ikey()}, want: 409})
		problemOf(t, r, store.CodeNotCancelable)
	})

	t.Run("400", func(t *testing.T) {
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
	})

	t.Run("401", func(t *testing.T) {
		r := c.do(t, call{method: "GET", path: "/v1/refunds", auth: "none", requestInvalid: true, want: 401})
		problemOf(t, r, server.CodeUnauthorized)
		r = c.do(t, call{method: "POST", path: "/v1/refunds", auth: "bearer:bf_not_a_key", body: map[string]any{"sessionId": sessionID}, want: 401})
		problemOf(t, r, server.CodeUnauthorized)
	})

	t.Run("403", func(t *testing.T) {
		_, readOnly := s.NewMerchantKey(t, nil, store.ScopeRefundsRead)
		r := c.do(t, call{method: "POST", path: "/v1/refunds", auth: "bearer:" + readOnly, body: map[string]any{"sessionId": sessionID}, want: 403})
		problemOf(t, r, server.CodeForbidden)
	})

	t.Run("404", func(t *testing.T) {
		missing := uuid.Must(uuid.NewV7()).String()
		problemOf(t, c.do(t, call{method: "GET", path: "/v1/refunds/" + missing, want: 404}), store.CodeRefundNotFound)
		problemOf(t, c.do(t, call{method: "GET", path: "/v1/transactions/" + missing, want: 404}), store.CodeTransactionNotFound)
		problemOf(t, c.do(t, call{method: "POST", path: "/v1/refunds/" + missing + "/cancel", want: 404}), store.CodeRefundNotFound)
		problemOf(t, c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": missing}, want: 404}), store.CodeSessionNotFound)
		problemOf(t, c.do(t, call{method: "POST", path: "/v1/transactions", want: 404, body: map[string]any{"sessionId": missing,
			"provider": "cardpay", "method": "card", "amount": 100, "currency": "EUR", "status": "CAPTURED", "providerReference": "x"}}),
			store.CodeSessionNotFound)
		// Another merchant's refund is 404, never 403.
		_, other := s.NewMerchantKey(t, nil)
		problemOf(t, c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, auth: "bearer:" + other, want: 404}), store.CodeRefundNotFound)
		problemOf(t, c.do(t, call{method: "POST", path: "/v1/provider-callbacks/nope", body: map[string]any{}, auth: "none", want: 404}), server.CodeNotFound)
	})

	t.Run("409", func(t *testing.T) {
		sess, _ := s.Transaction(t, map[string]any{"status": "AUTHORIZED"})
		r := c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": sess}, want: 409})
		problemOf(t, r, store.CodeNotCaptured)
	})

	t.Run("422", func(t *testing.T) {
		// Field validation: every invalid field is listed in errors[].
		r := c.do(t, call{method: "POST", path: "/v1/refunds", requestInvalid: true, want: 422, body: map[string]any{
			"sessionId": sessionID, "description": "", "reasonCode": "BORED", "reference": strings.Repeat("r", 41),
			"refundValue": map[string]any{"amount": 0, "currency": "EUR"}}})
		p := problemOf(t, r, store.CodeValidation)
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
		problemOf(t, r, store.CodeValidation)
		// Business rules on a well-formed request.
		r = c.do(t, call{method: "POST", path: "/v1/refunds", want: 422, body: map[string]any{"originalTransactionId": txID,
			"refundValue": map[string]any{"amount": 99999999, "currency": "EUR"}}})
		problemOf(t, r, store.CodeAmountInsufficient)
		r = c.do(t, call{method: "POST", path: "/v1/refunds", want: 422, body: map[string]any{"originalTransactionId": txID,
			"refundValue": map[string]any{"amount": 100, "currency": "USD"}}})
		problemOf(t, r, store.CodeCurrencyMismatch)
		r = c.do(t, call{method: "POST", path: "/v1/transactions", requestInvalid: true, want: 422, body: map[string]any{"sessionId": sessionID,
			"provider": "", "method": "cheque", "amount": 0, "currency": "eur", "status": "REFUNDED", "providerReference": ""}})
		if p := problemOf(t, r, store.CodeValidation); len(p.Errors) < 6 {
			t.Errorf("errors = %+v", p.Errors)
		}
	})

	// The validator itself must catch drift: a response missing a required
	// field or carrying a wrong type or an unknown field fails.
	t.Run("drift is detected", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.APIURL+"/v1/refunds/"+refundID, nil)
		req.Header.Set("Authorization", "Bearer "+s.MerchantKey)
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
	})
}
