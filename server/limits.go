package server

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

const (
	maxRequestBodyBytes = 64 << 10
	// maxDrainBytes is how much of an oversized body is read and dropped
	// before the 413 goes out, so that a client sending the whole body
	// before reading receives the answer rather than a reset connection.
	// Beyond it the connection is closed unread.
	maxDrainBytes = 8 << 20
)

const rawBodyKey = "body.raw"

// limitBody bounds every request body to maxRequestBodyBytes: a declared
// length over it is refused at once, a longer body when it is read.
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > maxRequestBodyBytes {
			if req.Header.Get("Expect") != "100-continue" {
				c.Set(rawBodyKey, req.Body) // the client sends it anyway: drain it
			}
			return tooLarge()
		}
		c.Set(rawBodyKey, req.Body)
		req.Body = http.MaxBytesReader(c.Response(), req.Body, maxRequestBodyBytes)
		return next(c)
	}
}

func tooLarge() *Problem {
	return problem(CodeTooLarge, "the request body is larger than 64 KiB")
}

// readBody reads the (bounded) request body: over the limit is 413.
func readBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request().Body)
	var over *http.MaxBytesError
	switch {
	case errors.As(err, &over):
		return nil, tooLarge()
	case err != nil:
		return nil, problem(CodeMalformed, "the request body could not be read")
	}
	return body, nil
}

// drainOversized reads and drops what is left of an oversized body, up to
// maxDrainBytes, and asks for the connection to be closed after the answer.
func drainOversized(c echo.Context) {
	c.Response().Header().Set(echo.HeaderConnection, "close")
	if raw, ok := c.Get(rawBodyKey).(io.Reader); ok {
		_, _ = io.CopyN(io.Discard, raw, maxDrainBytes)
	}
}

// Limits are the HTTP server's timeouts and header size limit.
type Limits struct {
	ReadHeaderTimeout time.Duration // to read a request's headers (slow clients hold no connection longer)
	ReadTimeout       time.Duration // to read a whole request, body included
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer
	IdleTimeout       time.Duration // a keep-alive connection waiting for its next request
	MaxHeaderBytes    int
}

// DefaultLimits are the production limits: long enough for the slowest
// legitimate call (an ops update waits up to 10 s on its workflow, a 64 KiB
// body on a slow link), short enough that idle or trickling clients cannot
// hold connections.
func DefaultLimits() Limits {
	return Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10}
}

// Apply sets the limits on srv.
func (l Limits) Apply(srv *http.Server) {
	srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout = l.ReadHeaderTimeout, l.ReadTimeout, l.WriteTimeout, l.IdleTimeout
	srv.MaxHeaderBytes = l.MaxHeaderBytes
}
