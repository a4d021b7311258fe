package bench

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a bench run, as JSON and as text.
type Report struct {
	StartedAt time.Time `json:"startedAt"`
	Machine   Machine   `json:"machine"`
	// IdleBusyPercent is the machine's CPU use before the load started.
	IdleBusyPercent float64      `json:"idleBusyPercent"`
	Config          ReportConfig `json:"config"`
	Backflow        PhaseReport  `json:"backflow"`
	// NoEndpoints is phase (a0), and Webhooks what the endpoints of phase
	// (a) received, when the run gave the merchant endpoints.
	NoEndpoints *PhaseReport   `json:"noEndpoints,omitempty"`
	Webhooks    *WebhookReport `json:"webhooks,omitempty"`
	Baseline    *PhaseReport   `json:"baseline,omitempty"`
	HalfRate    *PhaseReport   `json:"halfRate,omitempty"`
	// Ratio is Backflow / baseline.
	Ratio   *Ratio            `json:"ratio,omitempty"`
	Memory  map[string]Memory `json:"memoryAtEnd"`
	Targets []Target          `json:"targets"`
}

// PhaseReport is one phase with what was measured around it.
type PhaseReport struct {
	PhaseResult
	DB  *DBTimes  `json:"db,omitempty"`
	SQL *SQLStats `json:"sql,omitempty"`
	// Persistence is the Temporal server's persistence work in the phase.
	Persistence *PersistenceStats `json:"temporalPersistence,omitempty"`
	History     *HistoryStats     `json:"history,omitempty"`
	CPU         CPUReport         `json:"cpu"`
	Memory      map[string]Memory `json:"memory,omitempty"`
}

// CPUReport is the CPU time each watched process used during a phase.
type CPUReport struct {
	// MsPerItem is CPU milliseconds per completed item, by process
	// (descendants included); "machine" is every process on the machine.
	MsPerItem map[string]float64 `json:"msPerItem"`
	// BusyPercent is the machine's busy CPU over the phase, of all its CPUs;
	// OtherPercent the part of it not used by the watched processes.
	BusyPercent  float64 `json:"machineBusyPercent"`
	OtherPercent float64 `json:"otherBusyPercent"`
	// StackMsPerItem is the CPU of the system under test per item (every
	// watched process but the bench, plus interrupts); CeilingPerSec the
	// throughput all CPUs would allow at that cost. Unlike throughput, both
	// hold on a machine shared with other work.
	StackMsPerItem float64 `json:"stackMsPerItem"`
	CeilingPerSec  float64 `json:"cpuCeilingPerSec"`
}

func cpuReport(before, after map[string]float64, elapsed time.Duration, n int) CPUReport {
	out := CPUReport{MsPerItem: map[string]float64{}}
	delta := func(k string) float64 { return after[k] - before[k] }
	// Busy time of processes outside the stack: other work on a shared
	// machine, which skews every figure.
	other := max(delta("machine")-delta("ours")-delta("irq"), 0)
	for k := range after {
		if n > 0 && k != "ours" {
			out.MsPerItem[k] = round(delta(k)*1000/float64(n), 2)
		}
	}
	if n > 0 {
		out.MsPerItem["other"] = round(other*1000/float64(n), 2)
		// The system under test: every watched process but the load
		// generator, plus the kernel's interrupt time.
		stack := delta("ours") - delta("bench") + delta("irq")
		out.StackMsPerItem = round(stack*1000/float64(n), 2)
		if stack > 0 {
			out.CeilingPerSec = round(float64(runtime.NumCPU())*float64(n)/stack, 1)
		}
	}
	if s := elapsed.Seconds(); s > 0 {
		capacity := s * float64(runtime.NumCPU())
		out.BusyPercent = round(delta("machine")*100/capacity, 1)
		out.OtherPercent = round(other*100/capacity, 1)
	}
	return out
}

// Ratio compares Backflow with the baseline.
type Ratio struct {
	Throughput float64 `json:"throughput"`
	E2EP50     float64 `json:"endToEndP50"`
	E2EP99     float64 `json:"endToEndP99"`
	// CPUCeiling compares the CPU-bound ceilings: the throughput ratio on a
	// machine to itself, robust to other work on a shared one.
	CPUCeiling float64 `json:"cpuCeiling"`
}

// Target is one of the performance goals of the issue.
type Target struct {
	Name string `json:"name"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

// Machine describes where the bench ran.
type Machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpuModel"`
	MemoryGiB float64 `json:"memoryGiB"`
	Kernel    string  `json:"kernel"`
	Go        string  `json:"go"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseFloat(strings.Fields(procField("/proc/meminfo", "MemTotal") + " 0")[0], 64); err == nil {
		m.MemoryGiB = round(kb/1024/1024, 1)
	}
	return m
}

func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ReportConfig is the run's settings as reported.
type ReportConfig struct {
	Refunds         int     `json:"refunds"`
	Concurrency     int     `json:"concurrency"`
	Rate            float64 `json:"rate,omitempty"`
	Warmup          int     `json:"warmup"`
	HalfRateSeconds float64 `json:"halfRateSeconds"`
	Provider        string  `json:"provider"`
	Amount          int64   `json:"amount"`
	Currency        string  `json:"currency"`
	IdempotencyKeys bool    `json:"idempotencyKeys"`
	Samples         int     `json:"historySamples"`
	Label           string  `json:"label,omitempty"`
	Endpoints       int     `json:"endpoints,omitempty"`
	DeadEndpoints   int     `json:"deadEndpoints,omitempty"`
}

func reportConfig(c Config) ReportConfig {
	return ReportConfig{Refunds: c.Refunds, Concurrency: c.Concurrency, Rate: c.Rate, Warmup: c.Warmup,
		HalfRateSeconds: c.HalfRate.Seconds(), Provider: c.Provider, Amount: c.Amount, Currency: c.Currency,
		IdempotencyKeys: c.IdempotencyKeys, Samples: c.Samples, Label: c.Label, Endpoints: c.Endpoints, DeadEndpoints: c.DeadEndpoints}
}

// finish computes the ratios and checks the targets.
func (r *Report) finish() {
	a := r.Backflow
	if b := r.Baseline; b != nil && b.Completed > 0 {
		r.Ratio = &Ratio{Throughput: ratio(a.Throughput, b.Throughput), E2EP50: ratio(a.E2E.P50, b.E2E.P50), E2EP99: ratio(a.E2E.P99, b.E2E.P99),
			CPUCeiling: ratio(a.CPU.CeilingPerSec, b.CPU.CeilingPerSec)}
		r.Targets = append(r.Targets, Target{
			Name: "end-to-end throughput ≥ 2× the baseline",
			Got:  fmt.Sprintf("%.2f× (%.1f/s vs %.1f/s)", r.Ratio.Throughput, a.Throughput, b.Throughput),
			Pass: r.Ratio.Throughput >= 2,
		}, Target{
			Name: "  same, by CPU cost per workflow (robust to a shared machine)",
			Got:  fmt.Sprintf("%.2f× (%.1f vs %.1f ms)", r.Ratio.CPUCeiling, a.CPU.StackMsPerItem, b.CPU.StackMsPerItem),
			Pass: r.Ratio.CPUCeiling >= 2,
		})
	}
	if z := r.NoEndpoints; z != nil && z.Completed > 0 {
		got := ratio(a.Throughput, z.Throughput)
		r.Targets = append(r.Targets, Target{
			Name: fmt.Sprintf("refunds/s with %d endpoints (%d dead) ≥ 90%% of none (same run)", r.Config.Endpoints+r.Config.DeadEndpoints, r.Config.DeadEndpoints),
			Got:  fmt.Sprintf("%.0f%% (%.1f/s vs %.1f/s)", got*100, a.Throughput, z.Throughput),
			Pass: got >= 0.9,
		})
		if a.History != nil && z.History != nil {
			r.Targets = append(r.Targets, Target{
				Name: "history events per refund independent of the endpoints",
				Got:  fmt.Sprintf("%.1f with, %.1f without", a.History.Events, z.History.Events),
				Pass: a.History.Events == z.History.Events,
			})
		}
	}
	if w := r.Webhooks; w != nil {
		r.Targets = append(r.Targets, Target{
			Name: "every webhook delivery to a live endpoint made",
			Got:  fmt.Sprintf("%d of %d", w.Delivered, w.Expected),
			Pass: w.Delivered >= w.Expected,
		})
	}
	if h := r.HalfRate; h != nil && h.Completed > 0 {
		r.Targets = append(r.Targets, Target{
			Name: "POST /v1/refunds accept p99 < 50 ms at half the max rate",
			Got:  fmt.Sprintf("%.1f ms at %.1f/s", h.Accept.P99, h.OfferedRate),
			Pass: h.Accept.P99 < 50,
		})
	}
	api, apiOK := r.Memory["api"]
	wrk, wrkOK := r.Memory["worker"]
	if apiOK && wrkOK {
		sum := api.HWM + wrk.HWM
		r.Targets = append(r.Targets, Target{
			Name: "API + worker RSS < 200 MB (peak, VmHWM)",
			Got:  fmt.Sprintf("%.0f MiB (api %.0f + worker %.0f)", sum, api.HWM, wrk.HWM),
			Pass: sum*1.048576 < 200,
		})
	}
}

// WriteText prints the report as tables.
func (r *Report) WriteText(out io.Writer) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	line := func(cells ...any) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(w, "\t")
			}
			fmt.Fprint(w, c)
		}
		fmt.Fprintln(w)
	}
	flush := func() { w.Flush() }
	m, c := r.Machine, r.Config
	fmt.Fprintf(out, "\nBackflow bench, %s", r.StartedAt.Format(time.RFC3339))
	if r.Config.Label != "" {
		fmt.Fprintf(out, ", %s", r.Config.Label)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "machine: %d CPUs (%s), %.1f GiB, Linux %s, %s; %.0f%% busy before the run\n", m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel, m.Go, r.IdleBusyPercent)
	load := fmt.Sprintf("closed loop, concurrency %d", c.Concurrency)
	if c.Rate > 0 {
		load = fmt.Sprintf("open loop at %.1f/s", c.Rate)
	}
	fmt.Fprintf(out, "load: %d per phase, %s, warm-up %d; refunds of %d %s on %s (sandbox: immediate success), one captured transaction each, Idempotency-Key %s\n\n",
		c.Refunds, load, c.Warmup, c.Amount, c.Currency, c.Provider, onOff(c.IdempotencyKeys))

	a, b := r.Backflow, r.Baseline
	col := func(f func(p *PhaseReport) string) (string, string) {
		if b == nil {
			return f(&a), "-"
		}
		return f(&a), f(b)
	}
	rat := func(x, y float64) string {
		if b == nil || y == 0 {
			return ""
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	bv := func(f func(p *PhaseReport) float64) float64 {
		if b == nil {
			return 0
		}
		return f(b)
	}
	line("", "(a) Backflow", fmt.Sprintf("(b) baseline: %d activities", BaselineActivities), "a/b")
	av, bs := col(func(p *PhaseReport) string { return fmt.Sprintf("%d / %d", p.Completed, p.Errors) })
	line("completed / errors", av, bs, "")
	av, bs = col(func(p *PhaseReport) string { return fmt.Sprintf("%.1f", p.Throughput) })
	line("throughput (completed/s)", av, bs, rat(a.Throughput, bv(func(p *PhaseReport) float64 { return p.Throughput })))
	for _, m := range []struct {
		label string // with the quantile's name
		of    func(p *PhaseReport) Latency
	}{{"end-to-end %s (ms)", func(p *PhaseReport) Latency { return p.E2E }},
		{"accept %s (ms) [POST 202 | start]", func(p *PhaseReport) Latency { return p.Accept }}} {
		for _, q := range []struct {
			name string
			f    func(l Latency) float64
		}{{"p50", func(l Latency) float64 { return l.P50 }}, {"p95", func(l Latency) float64 { return l.P95 }}, {"p99", func(l Latency) float64 { return l.P99 }}} {
			v := func(p *PhaseReport) float64 { return q.f(m.of(p)) }
			av, bs = col(func(p *PhaseReport) string { return fmt.Sprintf("%.1f", v(p)) })
			line(fmt.Sprintf(m.label, q.name), av, bs, rat(v(&a), bv(v)))
		}
	}
	if a.History != nil {
		av, bs = col(func(p *PhaseReport) string {
			if p.History == nil {
				return "-"
			}
			return fmt.Sprintf("%.1f", p.History.Events)
		})
		line("history events / workflow", av, bs, rat(a.History.Events, bv(func(p *PhaseReport) float64 {
			if p.History == nil {
				return 0
			}
			return p.History.Events
		})))
		av, bs = col(func(p *PhaseReport) string {
			if p.History == nil {
				return "-"
			}
			return fmt.Sprintf("%.0f", p.History.Bytes)
		})
		line("history bytes / workflow", av, bs, "")
	}
	if a.Persistence != nil {
		pv := func(f func(s *PersistenceStats) float64) func(p *PhaseReport) float64 {
			return func(p *PhaseReport) float64 {
				if p.Persistence == nil {
					return 0
				}
				return f(p.Persistence)
			}
		}
		ops, busy := pv(func(s *PersistenceStats) float64 { return s.OpsPerItem }), pv(func(s *PersistenceStats) float64 { return s.MsPerItem })
		av, bs = col(func(p *PhaseReport) string { return fmt.Sprintf("%.1f", ops(p)) })
		line("Temporal persistence ops / workflow", av, bs, rat(ops(&a), bv(ops)))
		av, bs = col(func(p *PhaseReport) string { return fmt.Sprintf("%.1f", busy(p)) })
		line("Temporal persistence ms / workflow", av, bs, rat(busy(&a), bv(busy)))
	}
	names := []string{"machine", "api", "worker", "baseline-worker", "temporal", "postgres", "sandbox", "bench", "irq", "other"}
	for _, n := range names {
		if _, ok := a.CPU.MsPerItem[n]; !ok {
			if b == nil {
				continue
			}
			if _, ok := b.CPU.MsPerItem[n]; !ok {
				continue
			}
		}
		label := "CPU ms / workflow: " + n
		switch n {
		case "machine":
			label = "CPU ms / workflow: whole machine"
		case "irq":
			label = "CPU ms / workflow: kernel irq (loopback net)"
		case "other":
			label = "CPU ms / workflow: other processes (noise)"
		}
		av, bs = col(func(p *PhaseReport) string { return fmt.Sprintf("%.2f", p.CPU.MsPerItem[n]) })
		line(label, av, bs, "")
	}
	av, bs = col(func(p *PhaseReport) string { return fmt.Sprintf("%.2f", p.CPU.StackMsPerItem) })
	line("CPU ms / workflow: the stack (all but bench)", av, bs, rat(a.CPU.StackMsPerItem, bv(func(p *PhaseReport) float64 { return p.CPU.StackMsPerItem })))
	av, bs = col(func(p *PhaseReport) string { return fmt.Sprintf("%.1f", p.CPU.CeilingPerSec) })
	line("CPU-bound ceiling (workflows/s)", av, bs, rat(a.CPU.CeilingPerSec, bv(func(p *PhaseReport) float64 { return p.CPU.CeilingPerSec })))
	av, bs = col(func(p *PhaseReport) string { return fmt.Sprintf("%.0f%%", p.CPU.BusyPercent) })
	line("machine CPU busy", av, bs, "")
	av, bs = col(func(p *PhaseReport) string { return fmt.Sprintf("%.0f%%", p.CPU.OtherPercent) })
	line("  of which other processes", av, bs, "")
	flush()
	for _, p := range []*PhaseReport{&a, b, r.HalfRate} {
		if p != nil && p.CPU.OtherPercent > 10 {
			fmt.Fprintf(out, "WARNING: %.0f%% of the machine's CPU went to other processes during %s: the figures are skewed; run again on a quiet machine.\n",
				p.CPU.OtherPercent, p.Name)
		}
	}

	if z := r.NoEndpoints; z != nil {
		c := r.Config
		fmt.Fprintf(out, "\nwebhooks: in (a) the merchant has %d endpoints: %d loopback receivers answering 204, %d loopback ports refusing connections; (a0) ran as many refunds before they existed\n",
			c.Endpoints+c.DeadEndpoints, c.Endpoints, c.DeadEndpoints)
		line("", "(a0) no endpoints", "(a) with endpoints", "a/a0")
		for _, x := range []struct {
			name string
			f    func(p *PhaseReport) float64
		}{
			{"throughput (refunds/s)", func(p *PhaseReport) float64 { return p.Throughput }},
			{"end-to-end p50 (ms)", func(p *PhaseReport) float64 { return p.E2E.P50 }},
			{"end-to-end p99 (ms)", func(p *PhaseReport) float64 { return p.E2E.P99 }},
			{"history events / refund", func(p *PhaseReport) float64 {
				if p.History == nil {
					return 0
				}
				return p.History.Events
			}},
			{"Temporal persistence ops / refund", func(p *PhaseReport) float64 {
				if p.Persistence == nil {
					return 0
				}
				return p.Persistence.OpsPerItem
			}},
			{"CPU ms / refund: the stack", func(p *PhaseReport) float64 { return p.CPU.StackMsPerItem }},
			{"machine CPU busy (%)", func(p *PhaseReport) float64 { return p.CPU.BusyPercent }},
			{"  of which other processes (%)", func(p *PhaseReport) float64 { return p.CPU.OtherPercent }},
		} {
			line(x.name, fmt.Sprintf("%.1f", x.f(z)), fmt.Sprintf("%.1f", x.f(&a)), fmt.Sprintf("%.2f", ratio(x.f(&a), x.f(z))))
		}
		flush()
		if w := r.Webhooks; w != nil {
			fmt.Fprintf(out, "webhook deliveries of (a) to the live endpoints: %d of %d, %d duplicates, %.1f/s; latency (event created → received) p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n",
				w.Delivered, w.Expected, w.Duplicates, w.PerSec, w.Latency.P50, w.Latency.P95, w.Latency.P99)
		}
	}

	if d := a.DB; d != nil {
		fmt.Fprintf(out, "\n(a) from Postgres timestamps (no polling), %d SUCCEEDED, %d not:\n", d.Succeeded, d.Other)
		line("", "p50 ms", "p95 ms", "p99 ms")
		for _, x := range []struct {
			n string
			l Latency
		}{{"created → completed (SUCCEEDED)", d.ToSucceeded}, {"created → workflow's first step", d.ToWorkflowStart},
			{"first step → marked PROCESSING", d.StartToSubmitted}, {"PROCESSING → SUCCEEDED", d.SubmittedToDone}} {
			line("  "+x.n, fmt.Sprintf("%.1f", x.l.P50), fmt.Sprintf("%.1f", x.l.P95), fmt.Sprintf("%.1f", x.l.P99))
		}
		line("  refunds/s, first created → last completed", fmt.Sprintf("%.1f", d.Throughput), "", "")
		flush()
	}

	if h := r.HalfRate; h != nil {
		fmt.Fprintf(out, "\n(c) Backflow at half its max rate: %.1f/s offered, %.1f/s completed, %d / %d errors, %d started late\n",
			h.OfferedRate, h.Throughput, h.Completed, h.Errors, h.Late)
		line("", "p50 ms", "p95 ms", "p99 ms")
		line("  accept (POST /v1/refunds → 202)", fmt.Sprintf("%.1f", h.Accept.P50), fmt.Sprintf("%.1f", h.Accept.P95), fmt.Sprintf("%.1f", h.Accept.P99))
		line("  end-to-end (POST → workflow completed)", fmt.Sprintf("%.1f", h.E2E.P50), fmt.Sprintf("%.1f", h.E2E.P95), fmt.Sprintf("%.1f", h.E2E.P99))
		if d := h.DB; d != nil {
			for _, x := range []struct {
				n string
				l Latency
			}{{"created → SUCCEEDED (Postgres)", d.ToSucceeded}, {"  created → workflow's first step", d.ToWorkflowStart},
				{"  first step → marked PROCESSING", d.StartToSubmitted}, {"  PROCESSING → SUCCEEDED", d.SubmittedToDone}} {
				line("  "+x.n, fmt.Sprintf("%.1f", x.l.P50), fmt.Sprintf("%.1f", x.l.P95), fmt.Sprintf("%.1f", x.l.P99))
			}
		}
		flush()
	}

	fmt.Fprintf(out, "\nmemory (MiB) at the end\n")
	line("", "VmRSS", "VmHWM (peak)")
	for _, n := range []string{"api", "worker", "baseline-worker", "sandbox", "temporal", "postgres", "bench"} {
		if mem, ok := r.Memory[n]; ok {
			note := ""
			if n == "postgres" {
				note = " (postmaster only)"
			}
			line("  "+n+note, fmt.Sprintf("%.1f", mem.RSS), fmt.Sprintf("%.1f", mem.HWM))
		}
	}
	if api, ok := r.Memory["api"]; ok {
		if wk, ok := r.Memory["worker"]; ok {
			line("  api + worker", fmt.Sprintf("%.1f", api.RSS+wk.RSS), fmt.Sprintf("%.1f", api.HWM+wk.HWM))
		}
	}
	flush()

	if s := a.SQL; s != nil {
		fmt.Fprintf(out, "\nSQL per refund (API + worker, %s): %.2f transactions (xact_commit), %.2f rollbacks, rows inserted %.2f, updated %.2f, deleted %.2f\n",
			s.Source, s.Transactions, s.Rollbacks, s.TupInserted, s.TupUpdated, s.TupDeleted)
		if s.Statements > 0 {
			fmt.Fprintf(out, "%.2f statements per refund (BEGIN/COMMIT included), %.3f ms of server execution time\n", s.Statements, s.ExecMs)
			line("  calls/refund", "mean ms", "statement")
			for _, st := range s.Top {
				line(fmt.Sprintf("  %.2f", st.PerRefund), fmt.Sprintf("%.3f", st.MeanMs), st.Query)
			}
		}
		flush()
	}

	if a.Persistence != nil {
		fmt.Fprintf(out, "\nTemporal persistence operations per workflow (server metrics; the dev server runs them one at a time)\n")
		line("  operation", "(a) per refund", "mean ms", "(b) per baseline workflow", "mean ms")
		perOp := func(p *PhaseReport) map[string]OpCount {
			m := map[string]OpCount{}
			if p != nil && p.Persistence != nil {
				for _, o := range p.Persistence.ByOperation {
					m[o.Operation] = o
				}
			}
			return m
		}
		am, bm := perOp(&a), perOp(b)
		ops := slices.Collect(maps.Keys(am))
		for op := range bm {
			if _, ok := am[op]; !ok {
				ops = append(ops, op)
			}
		}
		weight := func(op string) float64 { return am[op].PerItem + bm[op].PerItem }
		slices.SortFunc(ops, func(x, y string) int { return cmp.Or(cmp.Compare(weight(y), weight(x)), strings.Compare(x, y)) })
		for _, op := range ops {
			if weight(op) >= 0.05 {
				line("  "+op, fmt.Sprintf("%.2f", am[op].PerItem), fmt.Sprintf("%.3f", am[op].MeanMs),
					fmt.Sprintf("%.2f", bm[op].PerItem), fmt.Sprintf("%.3f", bm[op].MeanMs))
			}
		}
		flush()
	}

	for _, x := range []struct {
		name string
		p    *PhaseReport
	}{{"(a) a refund", &a}, {"(b) a baseline workflow", b}, {"(c) a refund at half the max rate", r.HalfRate}} {
		if x.p == nil || x.p.History == nil || x.p.History.Samples == 0 {
			continue
		}
		h := x.p.History
		fmt.Fprintf(out, "\nwhere the time of %s goes (history of %d samples; started → completed p50 %.1f ms, p99 %.1f ms)\n",
			x.name, h.Samples, h.Duration.P50, h.Duration.P99)
		line("  step", "mean ms", "p50 ms", "max ms")
		if x.p != b { // the baseline's steps repeat: JSON only
			for _, s := range h.Steps {
				line("  "+s.Label, fmt.Sprintf("%.1f", s.MeanMs), fmt.Sprintf("%.1f", s.P50Ms), fmt.Sprintf("%.1f", s.MaxMs))
			}
		}
		line("  by kind (sum per workflow)", "", "", "")
		for _, s := range h.Categories {
			line("    "+s.Label, fmt.Sprintf("%.1f", s.MeanMs), fmt.Sprintf("%.1f", s.P50Ms), fmt.Sprintf("%.1f", s.MaxMs))
		}
		types := make([]string, 0, len(h.ByType))
		for t := range h.ByType {
			types = append(types, t)
		}
		slices.Sort(types)
		parts := make([]string, 0, len(types))
		for _, t := range types {
			parts = append(parts, fmt.Sprintf("%s %g", t, h.ByType[t]))
		}
		flush()
		fmt.Fprintf(out, "  events: %s\n", strings.Join(parts, ", "))
	}

	if len(r.Targets) > 0 {
		fmt.Fprintf(out, "\ntargets\n")
		for _, t := range r.Targets {
			mark := "FAIL"
			if t.Pass {
				mark = "pass"
			}
			line("  ["+mark+"] "+t.Name, t.Got)
		}
		flush()
	}
	for _, p := range []*PhaseReport{&a, b, r.HalfRate} {
		if p != nil && len(p.FirstErrors) > 0 {
			fmt.Fprintf(out, "\nfirst errors of %s:\n  %s\n", p.Name, strings.Join(p.FirstErrors, "\n  "))
		}
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
