// Package webhooks defines Backflow's webhook wire format: the event
// envelope, the Backflow-Signature header and the secrets that sign it.
//
// Backflow signs every delivery with Sign; merchants check a delivery with
// Verify before trusting it:
//
//	body, _ := io.ReadAll(r.Body)
//	err := webhooks.Verify(body, r.Header.Get(webhooks.SignatureHeader), secret, webhooks.DefaultTolerance, time.Now())
//
// The package has no dependency on the rest of Backflow, so a merchant's
// service can import it alone.
package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Header names of a delivery.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=...]".
	SignatureHeader = "Backflow-Signature"
	// EventIDHeader carries the event id, stable across retries: use it to
	// drop duplicates.
	EventIDHeader = "Backflow-Event-Id"
)

// SecretPrefix starts every endpoint secret.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock before Verify rejects it as a possible replay.
const DefaultTolerance = 5 * time.Minute

// signatureScheme is the only scheme Backflow signs with today.
const signatureScheme = "v1"

// Errors returned by Verify; branch with errors.Is.
var (
	ErrMalformedHeader = errors.New("webhooks: malformed signature header")
	ErrTimestamp       = errors.New("webhooks: timestamp outside the tolerance window")
	ErrNoMatch         = errors.New("webhooks: no signature matches the payload and secret")
)

// Event is the JSON body of every delivery. Data holds {"refund": <refund
// object>}, the refund as GET /v1/refunds/{id} shows it at the time of the
// event. Sequence orders the events of one refund (1, 2, ...); deliveries
// may arrive out of order or more than once.
type Event struct {
	ID        uuid.UUID       `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"createdAt"`
	Sequence  int             `json:"sequence"`
	Data      json.RawMessage `json:"data"`
}

// NewSecret returns a fresh endpoint secret: "whsec_" and 32 random bytes in hex.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random secret: %w", err)
	}
	return SecretPrefix + hex.EncodeToString(b), nil
}

// Sign returns the Backflow-Signature header value of payload at time t:
// one v1 entry per secret, in order. The HMAC-SHA256 key is the whole secret
// string (prefix included) and the signed message is "<t>.<payload>".
func Sign(payload []byte, secrets []string, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, s := range secrets {
		b.WriteString("," + signatureScheme + "=")
		b.WriteString(hex.EncodeToString(mac(s, ts, payload)))
	}
	return b.String()
}

func mac(secret, ts string, payload []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(payload)
	return h.Sum(nil)
}

// Verify checks that header signs payload with secret and that its timestamp
// is within tolerance of now (either direction; tolerance <= 0 means
// DefaultTolerance). It succeeds when any v1 entry matches, so it keeps
// working while the endpoint's secret is being rotated. Signatures are
// compared in constant time. Pass the raw request body, before any JSON
// decoding.
func Verify(payload []byte, header, secret string, tolerance time.Duration, now time.Time) error {
	ts, sigs, err := parseHeader(header)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	signedAt := time.Unix(ts, 0)
	if d := now.Sub(signedAt); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, now %s", ErrTimestamp, signedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	want := mac(secret, strconv.FormatInt(ts, 10), payload)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrNoMatch
}

// parseHeader splits "t=...,v1=...,v1=..." into the timestamp and the v1
// signatures. Entries of unknown schemes are ignored so new schemes can be
// added without breaking receivers.
func parseHeader(header string) (int64, [][]byte, error) {
	var ts int64
	var haveTS bool
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return 0, nil, fmt.Errorf("%w: entry %q is not key=value", ErrMalformedHeader, part)
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || haveTS {
				return 0, nil, fmt.Errorf("%w: bad or repeated timestamp %q", ErrMalformedHeader, v)
			}
			ts, haveTS = n, true
		case signatureScheme:
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return 0, nil, fmt.Errorf("%w: v1 is not a hex SHA-256 HMAC", ErrMalformedHeader)
			}
			sigs = append(sigs, sig)
		}
	}
	if !haveTS {
		return 0, nil, fmt.Errorf("%w: no timestamp", ErrMalformedHeader)
	}
	if len(sigs) == 0 {
		return 0, nil, fmt.Errorf("%w: no v1 signature", ErrMalformedHeader)
	}
	return ts, sigs, nil
}
