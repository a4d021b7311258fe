package bench

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The dev server keeps its state in SQLite through one connection, so every
// persistence operation is serialized: operations per workflow, read from the
// server's own metrics, are what bounds throughput there.

// opStat is the cumulative count and seconds of one persistence operation.
type opStat struct{ count, seconds float64 }

// PersistenceStats are the Temporal server's persistence operations during a
// phase, per completed workflow.
type PersistenceStats struct {
	OpsPerItem float64 `json:"opsPerItem"`
	// MsPerItem is the time spent in persistence calls, waits for the
	// connection included.
	MsPerItem   float64   `json:"msPerItem"`
	ByOperation []OpCount `json:"byOperation"`
}

// OpCount is one operation's calls per workflow and their mean latency.
type OpCount struct {
	Operation string  `json:"operation"`
	PerItem   float64 `json:"perItem"`
	MeanMs    float64 `json:"meanMs"`
}

// snapshotPersistence reads the (visibility_)persistence_requests and
// _latency metrics from the server's Prometheus endpoint, summed by operation.
func snapshotPersistence(ctx context.Context, url string) (map[string]opStat, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read Temporal metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read Temporal metrics: %s", resp.Status)
	}
	return parsePersistence(resp.Body)
}

func parsePersistence(r io.Reader) (map[string]opStat, error) {
	out := map[string]opStat{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		kind, name, _ := strings.Cut(name, "persistence_")
		if (kind != "" && kind != "visibility_") || (name != "requests" && name != "latency_sum") {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		op := label(labels, "operation")
		if kind != "" {
			op = "visibility " + op
		}
		s := out[op]
		if name == "requests" {
			s.count += v
		} else {
			s.seconds += v
		}
		out[op] = s
	}
	return out, sc.Err()
}

// label returns one label's value from a Prometheus label set.
func label(labels, key string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func diffPersistence(before, after map[string]opStat, n int) PersistenceStats {
	var out PersistenceStats
	if n == 0 {
		return out
	}
	for op, a := range after {
		d := opStat{count: a.count - before[op].count, seconds: a.seconds - before[op].seconds}
		if d.count <= 0 {
			continue
		}
		out.OpsPerItem += d.count / float64(n)
		out.MsPerItem += d.seconds * 1000 / float64(n)
		out.ByOperation = append(out.ByOperation, OpCount{Operation: op, PerItem: round(d.count/float64(n), 2),
			MeanMs: round(d.seconds*1000/d.count, 3)})
	}
	out.OpsPerItem, out.MsPerItem = round(out.OpsPerItem, 2), round(out.MsPerItem, 2)
	slices.SortFunc(out.ByOperation, func(a, b OpCount) int {
		return cmp.Or(cmp.Compare(b.PerItem, a.PerItem), strings.Compare(a.Operation, b.Operation))
	})
	return out
}
