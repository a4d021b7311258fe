package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := Summarize(ds)
	if l.Count != 100 || l.P50 != 50 || l.P95 != 95 || l.P99 != 99 || l.Max != 100 || l.Mean != 50.5 {
		t.Fatalf("Summarize = %+v", l)
	}
	if got := Summarize(nil); got.Count != 0 {
		t.Fatalf("Summarize(nil) = %+v", got)
	}
}

func TestSample(t *testing.T) {
	s := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if got := sample(s, 5); len(got) != 5 || got[0] != 0 || got[4] != 8 {
		t.Fatalf("sample = %v", got)
	}
	if got := sample(s, 20); len(got) != 10 {
		t.Fatalf("sample of more than there is = %v", got)
	}
}

func TestPhaseClosedLoop(t *testing.T) {
	r := Phase{Name: "t", Total: 50, Concurrency: 4, Do: func(context.Context, int) Item {
		it := Item{Start: time.Now()}
		time.Sleep(time.Millisecond)
		it.Accept, it.E2E = time.Since(it.Start), 2*time.Since(it.Start)
		return it
	}}.Run(context.Background())
	if r.Completed != 50 || r.Errors != 0 || r.Throughput <= 0 || r.E2E.Count != 50 {
		t.Fatalf("phase = %+v", r)
	}
}

func TestProcAccounting(t *testing.T) {
	m, ok := readMemory(os.Getpid())
	if !ok || m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("readMemory = %+v, %v", m, ok)
	}
	cpu := cpuSeconds([]Proc{{Name: "self", PID: os.Getpid()}})
	if cpu["machine"] <= 0 || cpu["self"] < 0 {
		t.Fatalf("cpuSeconds = %v", cpu)
	}
}

// TestReceivers: live receivers count distinct deliveries and duplicates
// with their latency; dead endpoints refuse connections.
func TestReceivers(t *testing.T) {
	r, err := StartReceivers(2, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	id := uuid.New()
	body := fmt.Sprintf(`{"id":%q,"createdAt":%q}`, id, time.Now().Add(-50*time.Millisecond).Format(time.RFC3339Nano))
	start := time.Now()
	for _, u := range append(r.Live, r.Live[0]) {
		resp, err := http.Post(u, "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("post to %s: %v %v", u, resp, err)
		}
		resp.Body.Close()
	}
	if _, err := http.Post(r.Dead[0], "application/json", strings.NewReader(body)); err == nil {
		t.Fatal("the dead endpoint answered")
	}
	w := r.waitDeliveries(context.Background(), 2, start, time.Second)
	if w.Delivered != 2 || w.Duplicates != 1 || w.Latency.P50 < 50 || w.LiveEndpoints != 2 || w.DeadEndpoints != 1 {
		t.Fatalf("report = %+v", w)
	}
}
