package sandbox

import (
	"net/http"
	"slices"
	"time"

	"github.com/backflow/backflow/providers"
)

// orchestraScopes are the scopes each sandbox token carries.
var orchestraScopes = map[string][]string{
	providers.SandboxOrchestraToken:         {"transactions.read", "transactions.write"},
	providers.SandboxOrchestraReadOnlyToken: {"transactions.read"},
}

// orchestraAPI is the orchestration platform (source 003): Bearer token with
// scopes, minor units 1..99,999,999, payment-method or gift-card-redemption
// targets, refund records processing → succeeded/declined/failed/voided.
var orchestraAPI = &api{
	name:   providers.TypeOrchestra,
	secret: providers.SandboxOrchestraCallbackSecret,
	auth: func(r *http.Request, write bool) errKind {
		scopes, ok := orchestraScopes[bearerToken(r)]
		switch {
		case !ok:
			return errUnauthorized
		case write && !slices.Contains(scopes, "transactions.write"),
			!write && !slices.Contains(scopes, "transactions.read"):
			return errForbidden
		}
		return errNone
	},
	newID:  uuidV7,
	render: renderOrchestra,
	callback: func(r record, id string, at time.Time) any {
		return map[string]any{"type": "event", "id": id, "created_at": at.Format(time.RFC3339), "target": renderOrchestra(r)}
	},
	errs: map[errKind]apiError{
		errMalformed:      {code: "bad_request"},
		errValidation:     {status: http.StatusBadRequest, code: "bad_request"},
		errUnauthorized:   {code: "unauthorized"},
		errForbidden:      {code: "forbidden"},
		errNotFound:       {code: "not_found"},
		errObjectNotFound: {code: "not_found"},
		errInsufficient:   {status: http.StatusBadRequest, code: "bad_request"},
		errNotCaptured:    {status: http.StatusBadRequest, code: "bad_request"},
		errMismatch:       {status: http.StatusConflict, code: "duplicate_record"},
		errDuplicate:      {code: "duplicate_record"},
		errRateLimited:    {code: "too_many_requests"},
		errUnavailable:    {code: "service_unavailable"},
	},
	errBody: func(status int, code, message string) any {
		return map[string]any{"type": "error", "code": code, "status": status, "message": message, "details": []any{}}
	},
}

func (s *Server) routeOrchestra() {
	a := orchestraAPI
	s.mux.HandleFunc("POST /orchestra/transactions/{transactionId}/refunds", s.orchestraCreate)
	s.mux.HandleFunc("GET /orchestra/refunds/{refundId}", s.handleGet(a, "refundId", nil))
	s.mux.HandleFunc("GET /orchestra/refunds", s.handleFind(a, "idempotency_key", func(items []any) any {
		return map[string]any{"items": items, "limit": 20, "next_cursor": nil, "previous_cursor": nil}
	}))
}

type orchestraRequest struct {
	Amount     *int64 `json:"amount"`
	TargetType string `json:"target_type"`
	TargetID   string `json:"target_id"`
}

// orchestraRefundRecord is the API's refund record.
type orchestraRefundRecord struct {
	Type                   string  `json:"type"`
	ID                     string  `json:"id"`
	TransactionID          string  `json:"transaction_id"`
	PaymentServiceRefundID string  `json:"payment_service_refund_id"`
	Status                 string  `json:"status"`
	Currency               string  `json:"currency"`
	Amount                 int64   `json:"amount"`
	CreatedAt              string  `json:"created_at"`
	UpdatedAt              string  `json:"updated_at"`
	TargetType             string  `json:"target_type"`
	TargetID               *string `json:"target_id"`
}

var orchestraStatus = [...]string{
	stateProcessing: "processing",
	stateSucceeded:  "succeeded",
	stateDeclined:   "declined",
	stateFailed:     "failed",
	stateReversed:   "reversed", // extension (outcome 08): 003 has no such status
}

// orchestraCurrency is reported on refund records: transactions are not
// registered, so their currency is unknown.
const orchestraCurrency = "USD"

func renderOrchestra(r record) any {
	req := r.details.(orchestraRequest)
	out := orchestraRefundRecord{
		Type:                   "refund",
		ID:                     r.id,
		TransactionID:          r.payment,
		PaymentServiceRefundID: "refund_" + r.id[len(r.id)-12:],
		Status:                 orchestraStatus[r.state],
		Currency:               r.currency,
		Amount:                 r.amount,
		CreatedAt:              r.created.Format(time.RFC3339Nano),
		UpdatedAt:              r.updated.Format(time.RFC3339Nano),
		TargetType:             req.TargetType,
	}
	if req.TargetID != "" {
		out.TargetID = &req.TargetID
	}
	return out
}

func (s *Server) orchestraCreate(w http.ResponseWriter, r *http.Request) {
	a := orchestraAPI
	if !a.authorize(w, r, true) {
		return
	}
	var req orchestraRequest
	if err := decodeBody(w, r, &req); err != nil {
		a.fail(w, errMalformed, err.Error())
		return
	}
	if req.TargetType == "" {
		req.TargetType = "payment-method"
	}
	switch {
	case req.Amount == nil:
		// Transactions are not registered, so the full amount is unknown.
		a.fail(w, errValidation, "amount is required in the sandbox")
		return
	case *req.Amount < 1 || *req.Amount > 99_999_999:
		a.fail(w, errValidation, "amount must be between 1 and 99999999")
		return
	case req.TargetType != "payment-method" && req.TargetType != "gift-card-redemption":
		a.fail(w, errValidation, "target_type must be payment-method or gift-card-redemption")
		return
	case req.TargetType == "gift-card-redemption" && req.TargetID == "":
		a.fail(w, errValidation, "target_id is required when target_type is gift-card-redemption")
		return
	}
	transaction := r.PathValue("transactionId")
	if kind, msg := paymentProblem(transaction); kind != errNone {
		a.fail(w, kind, msg)
		return
	}
	s.submit(w, r, createReq{api: a, payment: transaction, amount: *req.Amount, currency: orchestraCurrency, details: req})
}
