package worker

import (
	"context"
	"errors"
	"log/slog"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/workflows"
)

// The ids every log line about a refund carries (docs/ops.md, "Logs"), so
// `jq 'select(.refundId == "…")'` finds the worker's lines as well as the API's.
const (
	keyRefundID   = "refundId"
	keyWorkflowID = "workflowId"
	keyMerchantID = "merchantId"
)

// idsHeader carries a refund's ids from its workflow to its activities.
const idsHeader = "backflow-log-ids"

// logIDs are the ids of the refund a workflow or activity works on.
type logIDs struct {
	RefundID   string `json:"refundId,omitempty"`
	MerchantID string `json:"merchantId,omitempty"`
	workflowID string
}

func (ids logIDs) keyvals() []any {
	kv := []any{keyWorkflowID, ids.workflowID}
	if ids.RefundID != "" {
		kv = append(kv, keyRefundID, ids.RefundID)
	}
	if ids.MerchantID != "" {
		kv = append(kv, keyMerchantID, ids.MerchantID)
	}
	return kv
}

// refundOf is the refund id in a refund workflow's id, "" for other workflows.
func refundOf(workflowID string) string {
	if id, ok := workflows.RefundIDOf(workflowID); ok {
		return id.String()
	}
	return ""
}

// Interceptor puts the refund's refundId, workflowId and merchantId on
// every log line of workflows and activities (workflow.GetLogger,
// activity.GetLogger), and logs each failed activity once, with them. The
// merchant comes from the refund workflow's search attributes and travels
// to its activities in a header. Provider errors are logged by the
// activity that called the provider, which knows which provider and which
// attempt (activities.logProviderError), so they are not logged again here.
func Interceptor() interceptor.WorkerInterceptor { return &workerInterceptor{} }

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
}

func (*workerInterceptor) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &workflowInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

func (*workerInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}}
}

// workflowInbound learns the run's ids when it starts.
type workflowInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	ids logIDs
}

func (w *workflowInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return w.Next.Init(&workflowOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, in: w})
}

func (w *workflowInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	w.ids = logIDs{workflowID: id, RefundID: refundOf(id)}
	if w.ids.RefundID != "" {
		// Set when the refund's workflow is started (workflows.StartOptions).
		w.ids.MerchantID, _ = workflow.GetTypedSearchAttributes(ctx).GetKeyword(workflows.SAMerchantID)
	}
	return w.Next.ExecuteWorkflow(ctx, in)
}

// workflowOutbound adds the ids to the workflow's logger and to the header
// of every activity it runs.
type workflowOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	in *workflowInbound
}

func (w *workflowOutbound) GetLogger(ctx workflow.Context) log.Logger {
	return log.With(w.Next.GetLogger(ctx), w.in.ids.keyvals()...)
}

func (w *workflowOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	w.setHeader(ctx)
	return w.Next.ExecuteActivity(ctx, activityType, args...)
}

func (w *workflowOutbound) ExecuteLocalActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	w.setHeader(ctx)
	return w.Next.ExecuteLocalActivity(ctx, activityType, args...)
}

func (w *workflowOutbound) setHeader(ctx workflow.Context) {
	if w.in.ids.RefundID == "" {
		return
	}
	if p, err := converter.GetDefaultDataConverter().ToPayload(w.in.ids); err == nil {
		interceptor.WorkflowHeader(ctx)[idsHeader] = p
	}
}

type idsKey struct{}

// activityInbound reads the ids of the activity's refund and logs its failure.
type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
}

func (a *activityInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return a.Next.Init(&activityOutbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}})
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	ids := logIDs{workflowID: info.WorkflowExecution.ID, RefundID: refundOf(info.WorkflowExecution.ID)}
	if p, ok := interceptor.Header(ctx)[idsHeader]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &ids)
	}
	ctx = context.WithValue(ctx, idsKey{}, ids)
	out, err := a.Next.ExecuteActivity(ctx, in)
	var pe *providers.Error
	if err != nil && !errors.As(err, &pe) {
		activity.GetLogger(ctx).Warn("activity failed", "activityType", info.ActivityType.Name, "attempt", info.Attempt, "error", err)
	}
	return out, err
}

type activityOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
}

func (a *activityOutbound) GetLogger(ctx context.Context) log.Logger {
	l := a.Next.GetLogger(ctx)
	if ids, ok := ctx.Value(idsKey{}).(logIDs); ok {
		return log.With(l, ids.keyvals()...)
	}
	return l
}

// sdkActivityError is the message of the SDK's own line for a failed
// activity, which carries the workflow id but not the refund's ids.
const sdkActivityError = "Activity error."

// Logger is the Temporal SDK's logger on l: the SDK's own "Activity error."
// lines go down to debug, since Interceptor logs every failure once with
// the refund's ids (and the activity logs a provider's failure itself).
func Logger(l *slog.Logger) log.Logger { return sdkLogger{log.NewStructuredLogger(l)} }

type sdkLogger struct{ log.Logger }

func (s sdkLogger) Error(msg string, keyvals ...any) {
	if msg == sdkActivityError {
		s.Logger.Debug(msg, keyvals...)
		return
	}
	s.Logger.Error(msg, keyvals...)
}

func (s sdkLogger) With(keyvals ...any) log.Logger { return sdkLogger{log.With(s.Logger, keyvals...)} }

func (s sdkLogger) WithCallerSkip(depth int) log.Logger { return sdkLogger{log.Skip(s.Logger, depth)} }
