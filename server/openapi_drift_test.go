package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
)

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
