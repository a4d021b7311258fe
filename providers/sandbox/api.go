package sandbox

import (
	"cmp"
	"net/http"
	"time"
)

// errKind is an API-neutral failure; each API answers it with its own status
// and code.
type errKind int

const (
	errNone           errKind = iota
	errMalformed              // body is not JSON of the right shape
	errValidation             // a field breaks the API's rules
	errUnauthorized           // missing or wrong credentials
	errForbidden              // credentials lack a scope
	errNotFound               // no such original payment
	errObjectNotFound         // no such refund or payout
	errInsufficient           // the payment has nothing left to refund
	errNotCaptured            // the payment is only authorized: void it instead
	errMismatch               // idempotency key reused for another request
	errDuplicate              // the key's request was already processed (outcome 10)
	errDeclined               // the refund was declined (APIs that answer declines as errors)
	errRateLimited
	errUnavailable
)

// defaultStatus is the HTTP status of each failure unless an API overrides it.
var defaultStatus = map[errKind]int{
	errMalformed:      http.StatusBadRequest,
	errValidation:     http.StatusUnprocessableEntity,
	errUnauthorized:   http.StatusUnauthorized,
	errForbidden:      http.StatusForbidden,
	errNotFound:       http.StatusNotFound,
	errObjectNotFound: http.StatusNotFound,
	errInsufficient:   http.StatusUnprocessableEntity,
	errNotCaptured:    http.StatusConflict,
	errMismatch:       http.StatusUnprocessableEntity,
	errDuplicate:      http.StatusConflict,
	errDeclined:       http.StatusPaymentRequired,
	errRateLimited:    http.StatusTooManyRequests,
	errUnavailable:    http.StatusServiceUnavailable,
}

// apiError is how one API answers a failure; status 0 means defaultStatus.
type apiError struct {
	status int
	code   string
}

// api describes one sandbox API: its vocabulary, error shape and callbacks.
type api struct {
	name     string // API type, also the default provider name
	secret   string // callback signing secret
	auth     func(r *http.Request, write bool) errKind
	newID    func() string
	render   func(record) any                                 // the API's object
	callback func(r record, eventID string, at time.Time) any // a callback body
	errs     map[errKind]apiError
	errBody  func(status int, code, message string) any
	// processedStatus answers a create whose object is final; default 201.
	processedStatus int
	// declinesAsErrors: a declined refund is answered errDeclined, not an object.
	declinesAsErrors bool
}

// answerObject answers a create with its (new or replayed) object: 202
// while it is processing.
func (a *api) answerObject(w http.ResponseWriter, r record) {
	switch {
	case r.state == stateDeclined && a.declinesAsErrors:
		a.fail(w, errDeclined, "the refund was declined")
	case r.state == stateProcessing:
		writeJSON(w, http.StatusAccepted, a.render(r))
	default:
		writeJSON(w, cmp.Or(a.processedStatus, http.StatusCreated), a.render(r))
	}
}

// fail answers kind in the API's error shape.
func (a *api) fail(w http.ResponseWriter, kind errKind, message string) {
	e := a.errs[kind]
	if e.status == 0 {
		e.status = defaultStatus[kind]
	}
	writeJSON(w, e.status, a.errBody(e.status, e.code, message))
}

// authorize checks the request's credentials and answers a failure.
func (a *api) authorize(w http.ResponseWriter, r *http.Request, write bool) bool {
	switch a.auth(r, write) {
	case errNone:
		return true
	case errForbidden:
		a.fail(w, errForbidden, "the credentials lack the scope this operation requires")
	default:
		a.fail(w, errUnauthorized, "missing or invalid credentials")
	}
	return false
}

// snakeError is the {"error":{"code","message"}} shape of the card,
// mobile-money and bank APIs.
func snakeError(_ int, code, message string) any {
	return map[string]any{"error": map[string]string{"code": code, "message": message}}
}

// envelope is the callback body of the camelCase APIs.
func envelope(eventType, id string, at time.Time, data any) any {
	return map[string]any{"id": id, "type": eventType, "createdAt": at.Format(time.RFC3339), "data": data}
}

// apis lists every API the sandbox serves; apiByName indexes it.
var (
	apis      = []*api{cardpayAPI, paydeskAPI, orchestraAPI, momoAPI, bankAPI}
	apiByName = func() map[string]*api {
		m := map[string]*api{}
		for _, a := range apis {
			m[a.name] = a
		}
		return m
	}()
)

// handleGet serves GET of one object by the path value idParam; match, when
// set, must also accept it (e.g. the payment it belongs to).
func (s *Server) handleGet(a *api, idParam string, match func(*http.Request, record) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.authorize(w, r, false) {
			return
		}
		rec, ok := s.get(a, r.PathValue(idParam))
		if !ok || (match != nil && !match(r, rec)) {
			a.fail(w, errObjectNotFound, "no such object")
			return
		}
		s.answerRead(w, a, []record{rec}, func(items []any) any { return items[0] })
	}
}

// handleFind serves a list filtered by the idempotency key in query
// parameter param, wrapped by page.
func (s *Server) handleFind(a *api, param string, page func([]any) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.authorize(w, r, false) {
			return
		}
		key := r.URL.Query().Get(param)
		if key == "" {
			a.fail(w, errValidation, "query parameter "+param+" is required")
			return
		}
		var found []record
		if rec, ok := s.findByKey(a, key); ok {
			found = append(found, rec)
		}
		s.answerRead(w, a, found, page)
	}
}

// answerRead answers a status check with the objects found, wrapped by
// page, or 401 while one of them is in its auth outage (outcome 09).
func (s *Server) answerRead(w http.ResponseWriter, a *api, found []record, page func([]any) any) {
	items := []any{}
	for _, rec := range found {
		if s.authOutage(rec) {
			a.fail(w, errUnauthorized, "credentials temporarily rejected")
			return
		}
		items = append(items, a.render(rec))
	}
	writeJSON(w, http.StatusOK, page(items))
}
