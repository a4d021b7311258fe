package workflows

import "time"

// Execution is a refund's workflow execution and its live status query, as
// ops see them. A missing or silent workflow is reported in Note: the
// database view stays available when Temporal is not.
type Execution struct {
	ID              string     `json:"workflowId"`
	RunID           string     `json:"runId,omitempty"`
	ExecutionStatus string     `json:"executionStatus,omitempty"` // Running, Completed, ... as Temporal spells them
	StartTime       *time.Time `json:"startTime,omitempty"`
	CloseTime       *time.Time `json:"closeTime,omitempty"`
	HistoryLength   int64      `json:"historyLength,omitempty"`
	// Status is the result of the workflow's status query; null when the
	// workflow is gone or could not answer, with Note saying why.
	Status *RefundState `json:"status"`
	Note   string       `json:"note,omitempty"`
}
