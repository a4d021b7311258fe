// Command report renders the rows the reliability tests wrote (with
// BACKFLOW_RELIABILITY_REPORT set) into the table of docs/reliability.md.
//
//	export BACKFLOW_RELIABILITY_REPORT=/tmp/rel.jsonl
//	go test -count=1 ./reliability
//	go test -count=1 -run FuzzCreateRefund ./server
//	go run ./internal/rig/cmd/report -in /tmp/rel.jsonl -doc docs/reliability.md
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/backflow/backflow/internal/rig"
)

func main() {
	in := flag.String("in", os.Getenv(rig.ReportEnv), "report rows (JSON lines)")
	doc := flag.String("doc", "docs/reliability.md", "document whose report section is replaced; - prints the table")
	flag.Parse()
	if err := run(*in, *doc); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, doc string) error {
	if in == "" {
		return fmt.Errorf("-in (or %s) is required", rig.ReportEnv)
	}
	rows, err := rig.ReadRows(in)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s holds no rows", in)
	}
	sort.SliceStable(rows, func(i, j int) bool { return number(rows[i].Scenario) < number(rows[j].Scenario) })
	latest := rows[0].At
	for _, r := range rows {
		if r.At.After(latest) {
			latest = r.At
		}
	}
	table := rig.Render(rows) + fmt.Sprintf("\nGenerated %s from one run of the suite (`go test ./reliability` and the seed corpus of `FuzzCreateRefund`).\n",
		latest.UTC().Format(time.DateOnly))
	if doc == "-" {
		fmt.Print(table)
		return nil
	}
	text, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	out, err := rig.Splice(string(text), table)
	if err != nil {
		return err
	}
	return os.WriteFile(doc, []byte(out), 0o644)
}

// number is a scenario's leading number ("10. Tenant ..." → 10).
func number(s string) int {
	n, err := strconv.Atoi(strings.SplitN(s, ".", 2)[0])
	if err != nil {
		return 1 << 30
	}
	return n
}
