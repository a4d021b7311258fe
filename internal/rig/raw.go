package rig

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// SendRaw writes wire, a whole HTTP/1.1 request, on a new connection to
// the API before reading anything, as naive clients do, then reads the
// answer: it shows whether a client that sends everything first gets an
// answer or a reset connection.
func SendRaw(apiURL string, wire []byte) (*http.Response, []byte, error) {
	conn, err := dialAPI(apiURL)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, nil, err
	}
	if _, err := conn.Write(wire); err != nil {
		return nil, nil, fmt.Errorf("send %d bytes: %w", len(wire), err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("read the answer: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// Chunked encodes body as a chunked transfer-encoding, in chunks of 32 KiB.
func Chunked(body []byte) []byte {
	var b bytes.Buffer
	for i := 0; i < len(body); i += 32 << 10 {
		part := body[i:min(i+32<<10, len(body))]
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(part), part)
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

// Trickle is a slowloris client: it sends head, then drip every 100 ms,
// until the server closes the connection or 10 s pass, and returns how
// long the server kept it.
func Trickle(apiURL, head, drip string) (time.Duration, error) {
	conn, err := dialAPI(apiURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		return 0, err
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, conn) // until the server closes
	}()
	for time.Since(start) < 10*time.Second {
		select {
		case <-closed:
			return time.Since(start), nil
		case <-time.After(100 * time.Millisecond):
			_, _ = io.WriteString(conn, drip)
		}
	}
	return time.Since(start), nil
}

func dialAPI(apiURL string) (net.Conn, error) {
	u, err := url.Parse(apiURL)
	if err != nil {
		return nil, err
	}
	return net.DialTimeout("tcp", u.Host, 5*time.Second)
}
