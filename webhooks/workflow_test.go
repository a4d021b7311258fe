package webhooks_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/workflows"
)

var testWebhookPolicy = activities.WebhookPolicy{
	InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Hour,
	GiveUpAfter: 72 * time.Hour, AttemptTimeout: 10 * time.Second,
}

func newWorkflowEnv(t *testing.T, policy ...activities.WebhookPolicy) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	p := testWebhookPolicy
	if len(policy) > 0 {
		p = policy[0]
	}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.RegisterWorkflowWithOptions(workflows.WebhookDeliveryWorkflow, workflow.RegisterOptions{Name: workflows.WebhookWorkflowName})
	var a *activities.Activities
	env.OnActivity(a.WebhookDeliveryPolicy, mock.Anything).Return(p, nil).Once()
	return env
}

// TestDeliveryWorkflowRetriesUntilDelivered: failed attempts are retried by
// Temporal with the policy's exponential backoff until one succeeds.
func TestDeliveryWorkflowRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	env := newWorkflowEnv(t)
	d := activities.Delivery{EventID: uuid.New(), EndpointID: uuid.New()}
	var a *activities.Activities
	var calls []time.Time
	env.OnActivity(a.DeliverWebhook, mock.Anything, d).Return(func(context.Context, activities.Delivery) (activities.DeliveryResult, error) {
		calls = append(calls, env.Now())
		if len(calls) < 4 {
			return activities.DeliveryResult{StatusCode: 500}, temporal.NewApplicationError("endpoint answered 500", activities.ErrTypeWebhookFailed)
		}
		return activities.DeliveryResult{Outcome: activities.DeliveryDelivered, StatusCode: 200}, nil
	})
	env.ExecuteWorkflow(workflows.WebhookWorkflowName, d)
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed=%v error=%v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	var res activities.DeliveryResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != activities.DeliveryDelivered {
		t.Fatalf("result %+v, %v", res, err)
	}
	if len(calls) != 4 {
		t.Fatalf("%d attempts, want 4", len(calls))
	}
	// Backoff 10 s, 20 s, 40 s between attempts.
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		if gap := calls[i+1].Sub(calls[i]); gap < want || gap > want+time.Second {
			t.Errorf("gap before attempt %d = %s, want %s", i+2, gap, want)
		}
	}
	env.AssertExpectations(t)
}

// TestDeliveryWorkflowStopsOnInvalidDelivery: a delivery that can never
// succeed is not retried and fails the workflow.
func TestDeliveryWorkflowStopsOnInvalidDelivery(t *testing.T) {
	t.Parallel()
	env := newWorkflowEnv(t)
	d := activities.Delivery{EventID: uuid.New(), EndpointID: uuid.New()}
	var a *activities.Activities
	env.OnActivity(a.DeliverWebhook, mock.Anything, d).
		Return(activities.DeliveryResult{}, temporal.NewNonRetryableApplicationError("event does not exist", activities.ErrTypeWebhookInvalid, nil)).Once()
	env.ExecuteWorkflow(workflows.WebhookWorkflowName, d)
	var actErr *temporal.ActivityError
	var appErr *temporal.ApplicationError
	err := env.GetWorkflowError()
	if !errors.As(err, &actErr) || !errors.As(actErr.Unwrap(), &appErr) || appErr.Type() != activities.ErrTypeWebhookInvalid {
		t.Fatalf("workflow error = %v, want %s", err, activities.ErrTypeWebhookInvalid)
	}
	env.AssertExpectations(t)
}

// TestDeliveryWorkflowGivesUp: an endpoint that never answers 2xx is
// retried, at most MaximumInterval apart, until GiveUpAfter; then the
// workflow fails so ops see it. (The test environment caps unlimited
// retries at 10 attempts, so the window here is 5 minutes, not 3 days.)
func TestDeliveryWorkflowGivesUp(t *testing.T) {
	t.Parallel()
	policy := activities.WebhookPolicy{InitialInterval: 10 * time.Second, BackoffCoefficient: 2,
		MaximumInterval: time.Minute, GiveUpAfter: 5 * time.Minute, AttemptTimeout: 10 * time.Second}
	env := newWorkflowEnv(t, policy)
	d := activities.Delivery{EventID: uuid.New(), EndpointID: uuid.New()}
	var a *activities.Activities
	start := env.Now()
	var calls []time.Duration
	env.OnActivity(a.DeliverWebhook, mock.Anything, d).Return(func(context.Context, activities.Delivery) (activities.DeliveryResult, error) {
		calls = append(calls, env.Now().Sub(start).Round(time.Second))
		return activities.DeliveryResult{StatusCode: 503}, temporal.NewApplicationError("endpoint answered 503", activities.ErrTypeWebhookFailed)
	})
	env.ExecuteWorkflow(workflows.WebhookWorkflowName, d)
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("workflow succeeded against an endpoint that always fails")
	}
	// Retries after 10 s, 20 s, 40 s, then every minute; the next one would start after 5 min.
	want := []time.Duration{0, 10 * time.Second, 30 * time.Second, 70 * time.Second, 130 * time.Second, 190 * time.Second, 250 * time.Second}
	if !slices.Equal(calls, want) {
		t.Fatalf("attempts at %v, want %v", calls, want)
	}
}

// TestDeliveryWorkflowEndsWhenEndpointGone: a 410 (or a deleted endpoint)
// ends the delivery successfully without retry.
func TestDeliveryWorkflowEndsWhenEndpointGone(t *testing.T) {
	t.Parallel()
	for _, outcome := range []string{activities.DeliveryEndpointGone, activities.DeliverySkipped} {
		env := newWorkflowEnv(t)
		d := activities.Delivery{EventID: uuid.New(), EndpointID: uuid.New()}
		var a *activities.Activities
		env.OnActivity(a.DeliverWebhook, mock.Anything, d).Return(activities.DeliveryResult{Outcome: outcome}, nil).Once()
		env.ExecuteWorkflow(workflows.WebhookWorkflowName, d)
		var res activities.DeliveryResult
		if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != outcome {
			t.Fatalf("%s: result %+v, %v", outcome, res, err)
		}
		env.AssertExpectations(t)
	}
}
