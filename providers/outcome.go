package providers

import "errors"

// The outcome rules (SPEC §12) in one place: which provider answers end a
// refund and which leave its outcome unknown. A refund whose outcome is
// unknown stays PROCESSING and is re-checked; it is never released.
//
//	answer                                  first send   after an unknown outcome   status check
//	2xx with a final status                 final        final                      final
//	2xx still processing                    wait         wait                       wait
//	decline (KindDeclined: 402, decline code) DECLINED   unknown                    unknown
//	rejection (KindInvalid: 400, 404, 422)  FAILED       unknown                    unknown
//	401, 403 (KindAuth)                     unknown, flagged stuck with reason provider.auth
//	409, any other 4xx (KindUnknown)        unknown
//	5xx, 408, 429, network, unreadable      unknown; retried with the same key after a look-up
//
// A first send is the first attempt of the first submit of a refund: no
// earlier attempt can have reached the provider. After any other attempt
// the refund is looked up by its Backflow id before it is sent again.

// FinalRejection reports whether err, the answer to a submit, ends the
// refund, and how: only a decline or a rejection of a first send does.
func FinalRejection(err error, firstSend bool) (Result, bool) {
	var pe *Error
	if !firstSend || !errors.As(err, &pe) {
		return Result{}, false
	}
	switch pe.Kind {
	case KindDeclined:
		return Result{Status: StatusDeclined, FailureCode: pe.Code, FailureMessage: pe.Message}, true
	case KindInvalid:
		return Result{Status: StatusFailed, FailureCode: pe.Code, FailureMessage: pe.Message}, true
	}
	return Result{}, false
}

// IsAuth reports whether err says the provider refused Backflow's
// credentials (401/403): never final, ops must fix the credentials.
func IsAuth(err error) bool { return KindOf(err) == KindAuth }
