package rig

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// ReportEnv names the file the reliability tests append their rows to.
const ReportEnv = "BACKFLOW_RELIABILITY_REPORT"

// Row is one scenario's line in docs/reliability.md.
type Row struct {
	Scenario string        `json:"scenario"`
	Injected string        `json:"injected"`
	Refunds  int           `json:"refunds"`
	Checked  string        `json:"checked"`
	Result   string        `json:"result"` // "pass" or "FAIL: ..."
	Duration time.Duration `json:"duration"`
	At       time.Time     `json:"at"`
}

var appendMu sync.Mutex

// AppendRow appends row as one JSON line to path.
func AppendRow(path string, row Row) error {
	appendMu.Lock()
	defer appendMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open report: %w", err)
	}
	b, err := json.Marshal(row)
	if err != nil {
		f.Close()
		return fmt.Errorf("encode report row: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	return errors.Join(err, f.Close())
}

// ReadRows reads a report file; a later row of the same scenario replaces an earlier one.
func ReadRows(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open report: %w", err)
	}
	defer f.Close()
	var rows []Row
	index := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("decode report row: %w", err)
		}
		if i, ok := index[r.Scenario]; ok {
			rows[i] = r
			continue
		}
		index[r.Scenario] = len(rows)
		rows = append(rows, r)
	}
	return rows, sc.Err()
}

// Render renders rows as a Markdown table.
func Render(rows []Row) string {
	var b strings.Builder
	b.WriteString("| scenario | injected | refunds | checked | result | time |\n")
	b.WriteString("|---|---|---:|---|---|---:|\n")
	var total time.Duration
	refunds := 0
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s |\n", cell(r.Scenario), cell(r.Injected), r.Refunds, cell(r.Checked),
			cell(r.Result), r.Duration.Round(100*time.Millisecond))
		total += r.Duration
		refunds += r.Refunds
	}
	fmt.Fprintf(&b, "| **total** | | **%d** | | | **%s** |\n", refunds, total.Round(time.Second))
	return b.String()
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}

// Report markers delimit the generated table in docs/reliability.md.
const (
	BeginMarker = "<!-- reliability-report:begin -->"
	EndMarker   = "<!-- reliability-report:end -->"
)

// Splice replaces what lies between the markers of doc with table.
func Splice(doc, table string) (string, error) {
	i := strings.Index(doc, BeginMarker)
	j := strings.Index(doc, EndMarker)
	if i < 0 || j < i {
		return "", errors.New("the document lacks the report markers " + BeginMarker + " / " + EndMarker)
	}
	return doc[:i+len(BeginMarker)] + "\n" + table + doc[j:], nil
}
