package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// HistoryStats describes the Temporal histories of a sample of workflows.
type HistoryStats struct {
	Samples int     `json:"samples"`
	Events  float64 `json:"eventsPerWorkflow"`
	Bytes   float64 `json:"bytesPerWorkflow"`
	// ByType is the mean count of each event type per workflow.
	ByType map[string]float64 `json:"eventsByType"`
	// Duration is WorkflowExecutionStarted → WorkflowExecutionCompleted (server clock).
	Duration Latency `json:"startedToCompleted"`
	// Steps is the time between consecutive milestones of the history, in
	// order (local activities are placed by the time they finished).
	Steps []Step `json:"steps"`
	// Categories sums the steps by kind, per workflow.
	Categories []Step `json:"categories"`
}

// Step is one segment of a workflow's life, averaged over the samples.
type Step struct {
	Label  string  `json:"label"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	MaxMs  float64 `json:"maxMs"`
	Seen   int     `json:"seen"` // samples in which it occurred
}

type point struct {
	label string
	kind  string // what the segment ending here is
	at    time.Time
}

// markerData is the SDK's local activity marker payload (the fields we read).
type markerData struct {
	ActivityType string
	ReplayTime   time.Time
}

// analyzeHistories reads the histories of the workflows and averages them.
func analyzeHistories(ctx context.Context, c client.Client, workflowIDs []string) (HistoryStats, error) {
	out := HistoryStats{ByType: map[string]float64{}}
	stepDur := map[string][]time.Duration{}
	var order []string
	catDur := map[string][]time.Duration{}
	var catOrder []string
	var durations []time.Duration
	for _, id := range workflowIDs {
		it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		var events []*historypb.HistoryEvent
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return out, fmt.Errorf("history of %s: %w", id, err)
			}
			events = append(events, ev)
		}
		if len(events) == 0 {
			continue
		}
		out.Samples++
		out.Events += float64(len(events))
		for _, ev := range events {
			out.Bytes += float64(proto.Size(ev))
			out.ByType[ev.GetEventType().String()]++
		}
		pts := milestones(events)
		if len(pts) >= 2 {
			durations = append(durations, pts[len(pts)-1].at.Sub(pts[0].at))
		}
		cats := map[string]time.Duration{}
		for i := 1; i < len(pts); i++ {
			label := pts[i-1].label + " → " + pts[i].label
			if _, ok := stepDur[label]; !ok {
				order = append(order, label)
			}
			d := max(pts[i].at.Sub(pts[i-1].at), 0)
			stepDur[label] = append(stepDur[label], d)
			kind := pts[i].kind
			if !slices.Contains(catOrder, kind) {
				catOrder = append(catOrder, kind)
			}
			cats[kind] += d
		}
		for k, d := range cats {
			catDur[k] = append(catDur[k], d)
		}
	}
	if out.Samples == 0 {
		return out, nil
	}
	n := float64(out.Samples)
	out.Events = round(out.Events/n, 1)
	out.Bytes = round(out.Bytes/n, 0)
	for k, v := range out.ByType {
		out.ByType[k] = round(v/n, 2)
	}
	out.Duration = Summarize(durations)
	for _, l := range order {
		out.Steps = append(out.Steps, step(l, stepDur[l]))
	}
	for _, k := range catOrder {
		out.Categories = append(out.Categories, step(k, catDur[k]))
	}
	return out, nil
}

func step(label string, ds []time.Duration) Step {
	l := Summarize(ds)
	return Step{Label: label, MeanMs: l.Mean, P50Ms: l.P50, MaxMs: l.Max, Seen: l.Count}
}

// Kinds of segments, by the milestone that ends them.
const (
	kindWFTQueue  = "workflow task: scheduled → picked up by the worker"
	kindLocal     = "workflow task: local activities (each up to its result)"
	kindWFTWorker = "workflow task: → completed (workflow code, completion RPC)"
	kindActQueue  = "activity: scheduled → started"
	kindActRun    = "activity: started → completed (the call + completion RPC)"
	kindServer    = "server: between tasks"
)

// milestones turns a history into time-ordered labelled points.
func milestones(events []*historypb.HistoryEvent) []point {
	var pts []point
	wft := 0
	actType := map[int64]string{}
	actSeen := map[string]int{}
	dc := converter.GetDefaultDataConverter()
	for _, ev := range events {
		at := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			pts = append(pts, point{"started", kindServer, at})
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			wft++
			pts = append(pts, point{fmt.Sprintf("WFT%d scheduled", wft), kindServer, at})
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			pts = append(pts, point{fmt.Sprintf("WFT%d started", wft), kindWFTQueue, at})
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			pts = append(pts, point{fmt.Sprintf("WFT%d %s", wft, verb(ev.GetEventType())), kindWFTWorker, at})
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			attrs := ev.GetMarkerRecordedEventAttributes()
			if attrs.GetMarkerName() != "LocalActivity" {
				continue
			}
			var md markerData
			if p := attrs.GetDetails()["data"]; p != nil && dc.FromPayloads(p, &md) == nil && !md.ReplayTime.IsZero() {
				pts = append(pts, point{"local " + md.ActivityType + " done", kindLocal, md.ReplayTime})
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			t := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			actSeen[t]++
			if actSeen[t] > 1 {
				t = fmt.Sprintf("%s#%d", t, actSeen[t])
			}
			actType[ev.GetEventId()] = t
			pts = append(pts, point{"activity " + t + " scheduled", kindServer, at})
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			t := actType[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]
			pts = append(pts, point{"activity " + t + " started", kindActQueue, at})
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED, enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			var sched int64
			switch {
			case ev.GetActivityTaskCompletedEventAttributes() != nil:
				sched = ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			case ev.GetActivityTaskFailedEventAttributes() != nil:
				sched = ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId()
			default:
				sched = ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
			}
			pts = append(pts, point{"activity " + actType[sched] + " " + verb(ev.GetEventType()), kindActRun, at})
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			pts = append(pts, point{"workflow " + verb(ev.GetEventType()), kindServer, at})
		}
		// Other commands recorded with the workflow task's completion (search
		// attribute upserts, timers, child starts) carry its time: no segment.
	}
	// Local activities finish inside their workflow task, before its
	// completion event: order by time.
	slices.SortStableFunc(pts, func(a, b point) int { return a.at.Compare(b.at) })
	return pts
}

// verb is how a closing event is named in step labels.
func verb(t enumspb.EventType) string {
	switch t {
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		return "completed"
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		return "failed"
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT, enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		return "timed out"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		return "continued as new"
	}
	return t.String()
}
