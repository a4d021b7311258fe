package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
	"github.com/labstack/echo/v4"
)

const (
	idempotencyKeyMaxLength   = 255
	idempotencyRecordDeadline = 5 * time.Second
)

// idempotent makes a POST with an Idempotency-Key safe to retry: the same key
// and body replay the first response; another body is 422; a request still in
// flight is 409. Keys are scoped per merchant and endpoint.
func (s *Server) idempotent(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := c.Request().Header.Get("Idempotency-Key")
		if key == "" {
			return next(c)
		}
		if len(key) > idempotencyKeyMaxLength {
			return problem(CodeMalformed, "Idempotency-Key is longer than 255 characters")
		}
		body, err := readBody(c)
		if err != nil {
			return err
		}
		c.Request().Body = io.NopCloser(bytes.NewReader(body))
		k := refunds.IdempotencyKey{Owner: scopeOwner(principal(c)), Endpoint: c.Request().Method + " " + c.Request().URL.Path, Key: key}
		sum := sha256.Sum256(body)
		ctx := c.Request().Context()

		stored, err := s.svc.ClaimKey(ctx, k, sum[:])
		switch {
		case errors.Is(err, refund.ErrIdempotencyMismatch):
			return problem(CodeIdempotencyMismatch, "this Idempotency-Key was used with a different request body")
		case errors.Is(err, refund.ErrIdempotencyInProgress):
			return problem(CodeIdempotencyInFlight, "a request with this Idempotency-Key is still in progress; retry later")
		case err != nil:
			return err
		case stored != nil:
			c.Response().Header().Set("Idempotent-Replayed", "true")
			ct := echo.MIMEApplicationJSON
			if stored.Status >= 400 {
				ct = problemContentType
			}
			return c.Blob(stored.Status, ct, stored.Body)
		}

		rec := &recorder{ResponseWriter: c.Response().Writer}
		c.Response().Writer = rec
		if err := next(c); err != nil {
			c.Error(err) // render now so the response is recorded
		}
		status := c.Response().Status
		// The effect has happened: record the key's outcome even when the
		// client is gone (its context canceled), so a retry replays it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idempotencyRecordDeadline)
		defer cancel()
		if status >= 300 {
			// A rejected or failed request leaves nothing behind, its key included:
			// the client may fix the request and retry with the same key.
			return s.svc.ReleaseKey(ctx, k)
		}
		sent := rec.body.Bytes()
		if replay, ok := c.Get(replayBodyKey).([]byte); ok {
			sent = replay // the answer held a secret that must not be stored
		}
		return s.svc.CompleteKey(ctx, k, refund.StoredResponse{Status: status, Body: sent})
	}
}

// replayBodyKey is where a handler puts the body an idempotent replay
// answers with, when it differs from the one sent (e.g. without a secret).
const replayBodyKey = "idempotency.replay"

// recorder keeps a copy of the response body for replay.
type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
