package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Item is the outcome of one unit of load: one refund or one baseline workflow.
type Item struct {
	Start  time.Time     // when the request was sent
	Accept time.Duration // until the synchronous answer (POST 202, StartWorkflowExecution)
	E2E    time.Duration // until the workflow completed
	Err    error
}

// Phase is one measured run of Total items.
type Phase struct {
	Name  string
	Total int
	// Concurrency is the number of closed-loop clients: each sends one item,
	// waits for its workflow to complete, then sends the next.
	Concurrency int
	// Rate, when > 0, makes the phase open-loop: items start at this many per
	// second whatever the latency, at most MaxInFlight at a time.
	Rate        float64
	MaxInFlight int
	Do          func(ctx context.Context, i int) Item
	Progress    io.Writer
}

// PhaseResult is what a phase measured.
type PhaseResult struct {
	Name        string    `json:"name"`
	Mode        string    `json:"mode"`
	Total       int       `json:"total"`
	Completed   int       `json:"completed"`
	Errors      int       `json:"errors"`
	FirstErrors []string  `json:"firstErrors,omitempty"`
	Started     time.Time `json:"started"`
	Ended       time.Time `json:"ended"`
	WallSeconds float64   `json:"wallSeconds"`
	// Throughput is completed items per second from the first send to the last completion.
	Throughput float64 `json:"throughputPerSec"`
	// OfferedRate is the open-loop target rate (0 in closed loop); Late counts
	// items that started late because MaxInFlight was reached.
	OfferedRate float64 `json:"offeredRatePerSec,omitempty"`
	Late        int     `json:"late,omitempty"`
	Accept      Latency `json:"accept"`
	E2E         Latency `json:"endToEnd"`

	items []Item
}

// Run drives the phase and prints a progress line every second.
func (p Phase) Run(ctx context.Context) PhaseResult {
	res := PhaseResult{Name: p.Name, Total: p.Total, Mode: fmt.Sprintf("closed loop, concurrency %d", p.Concurrency)}
	if p.Rate > 0 {
		res.Mode = fmt.Sprintf("open loop, %.1f/s", p.Rate)
		res.OfferedRate = round(p.Rate, 1)
	}
	items := make([]Item, p.Total)
	var done, failed, inFlight atomic.Int64
	run := func(i int) {
		inFlight.Add(1)
		it := p.Do(ctx, i)
		inFlight.Add(-1)
		items[i] = it
		if it.Err != nil {
			failed.Add(1)
		}
		done.Add(1)
	}

	start := time.Now()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-stopProgress:
				return
			case now := <-t.C:
				d := done.Load()
				if p.Progress != nil {
					fmt.Fprintf(p.Progress, "  [%s] %d/%d done  %.1f/s (last 1s: %d)  in flight %d  errors %d  %.0fs\n",
						p.Name, d, p.Total, float64(d)/now.Sub(start).Seconds(), d-last, inFlight.Load(), failed.Load(), now.Sub(start).Seconds())
				}
				last = d
			}
		}
	}()

	var wg sync.WaitGroup
	if p.Rate > 0 {
		limit := max(p.MaxInFlight, 1)
		sem := make(chan struct{}, limit)
		interval := time.Duration(float64(time.Second) / p.Rate)
		for i := 0; i < p.Total && ctx.Err() == nil; i++ {
			at := start.Add(time.Duration(i) * interval)
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
			select {
			case sem <- struct{}{}:
			default:
				res.Late++
				sem <- struct{}{}
			}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				run(i)
			}(i)
		}
	} else {
		var next atomic.Int64
		for c := 0; c < max(p.Concurrency, 1); c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= p.Total {
						return
					}
					run(i)
				}
			}()
		}
	}
	wg.Wait()
	close(stopProgress)
	<-progressDone

	res.items = items
	var accept, e2e []time.Duration
	first, last := time.Time{}, time.Time{}
	for _, it := range items {
		if it.Start.IsZero() {
			continue // never sent (interrupted)
		}
		if first.IsZero() || it.Start.Before(first) {
			first = it.Start
		}
		if it.Err != nil {
			res.Errors++
			if len(res.FirstErrors) < 5 {
				res.FirstErrors = append(res.FirstErrors, it.Err.Error())
			}
			continue
		}
		res.Completed++
		accept = append(accept, it.Accept)
		e2e = append(e2e, it.E2E)
		if end := it.Start.Add(it.E2E); end.After(last) {
			last = end
		}
	}
	res.Started, res.Ended = first, last
	if !first.IsZero() && last.After(first) {
		res.WallSeconds = round(last.Sub(first).Seconds(), 2)
		res.Throughput = round(float64(res.Completed)/last.Sub(first).Seconds(), 1)
	}
	res.Accept, res.E2E = Summarize(accept), Summarize(e2e)
	return res
}
