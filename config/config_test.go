package config

import (
	"strings"
	"testing"
)

func TestAPIWorker(t *testing.T) {
	cases := []struct {
		value   string
		want    bool
		wantErr string
	}{
		{"", false, ""},
		{"true", true, ""},
		{"0", false, ""},
		{"yes", false, "BACKFLOW_API_WORKER: want true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv("BACKFLOW_API_WORKER", tc.value)
			c, err := Load()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.APIWorker != tc.want {
				t.Fatalf("APIWorker = %v (error %v), want %v", c.APIWorker, err, tc.want)
			}
		})
	}
}

// loadCase is an environment and what Load must make of it.
type loadCase struct {
	name    string
	env     map[string]string
	check   func(Config) bool
	wantErr string
}

// runLoadCases loads the configuration of each case's environment.
func runLoadCases(t *testing.T, cases []loadCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := Load()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("Load() = %+v, %v", c, err)
			}
		})
	}
}

func TestProviderSettings(t *testing.T) {
	runLoadCases(t, []loadCase{
		{name: "public URL keeps no trailing slash", env: map[string]string{"BACKFLOW_PUBLIC_URL": "https://refunds.example/"},
			check: func(c Config) bool { return c.PublicURL == "https://refunds.example" }},
		{name: "public URL must be absolute", env: map[string]string{"BACKFLOW_PUBLIC_URL": "refunds.example:8080"},
			wantErr: "BACKFLOW_PUBLIC_URL: want an absolute http(s) URL"},
		{name: "stripe webhook secret", env: map[string]string{"BACKFLOW_STRIPE_CALLBACK_SECRET": "whsec_1"},
			check: func(c Config) bool { return c.StripeCallbackSecret == "whsec_1" && !c.StripePollingOnly }},
		{name: "stripe polling only", env: map[string]string{"BACKFLOW_STRIPE_POLLING_ONLY": "true"},
			check: func(c Config) bool { return c.StripePollingOnly }},
		{name: "stripe polling only must be a bool", env: map[string]string{"BACKFLOW_STRIPE_POLLING_ONLY": "sometimes"},
			wantErr: "BACKFLOW_STRIPE_POLLING_ONLY: want true or false"},
	})
}

func TestLogValueMasksStripeSecret(t *testing.T) {
	c := Config{StripeCallbackSecret: "whsec_secret"}
	if s := c.LogValue().String(); strings.Contains(s, "whsec_secret") {
		t.Errorf("LogValue() leaks the secret: %s", s)
	}
}

func TestAccessSettings(t *testing.T) {
	t.Setenv("BACKFLOW_RATE_LIMIT", "")
	t.Setenv("BACKFLOW_WEBHOOK_ALLOW_LOOPBACK", "")
	runLoadCases(t, []loadCase{
		{name: "default rate limit", check: func(c Config) bool { return c.RateLimit == 100 && c.RateBurst == 200 }},
		{name: "rate and burst", env: map[string]string{"BACKFLOW_RATE_LIMIT": "20:50"},
			check: func(c Config) bool { return c.RateLimit == 20 && c.RateBurst == 50 }},
		{name: "rate alone bursts twice", env: map[string]string{"BACKFLOW_RATE_LIMIT": "25/s"},
			check: func(c Config) bool { return c.RateLimit == 25 && c.RateBurst == 50 }},
		{name: "no limit", env: map[string]string{"BACKFLOW_RATE_LIMIT": "off"}, check: func(c Config) bool { return c.RateLimit == 0 }},
		{name: "bad rate", env: map[string]string{"BACKFLOW_RATE_LIMIT": "fast"}, wantErr: "BACKFLOW_RATE_LIMIT: want requests a second"},
		{name: "bad burst", env: map[string]string{"BACKFLOW_RATE_LIMIT": "10:0"}, wantErr: "BACKFLOW_RATE_LIMIT: want requests a second"},
		{name: "webhooks to public addresses by default", check: func(c Config) bool { return !c.WebhookAllowLoopback }},
		{name: "loopback webhooks", env: map[string]string{"BACKFLOW_WEBHOOK_ALLOW_LOOPBACK": "true"},
			check: func(c Config) bool { return c.WebhookAllowLoopback }},
	})
}

func TestWebhookSettings(t *testing.T) {
	runLoadCases(t, []loadCase{
		{name: "defaults: both queues, webhooks beside refunds", env: map[string]string{},
			check: func(c Config) bool {
				return strings.Join(c.WorkerQueues, ",") == "refunds,webhooks" && c.WebhookTaskQueue == "backflow-refunds-webhooks" &&
					c.WebhookDispatchers == 1 && c.WebhookEndpointConcurrency == 4 && c.WebhookTimeout.String() == "10s"
			}},
		{name: "the webhooks queue follows the refunds one", env: map[string]string{"BACKFLOW_TASK_QUEUE": "eu"},
			check: func(c Config) bool { return c.WebhookTaskQueue == "eu-webhooks" }},
		{name: "webhooks alone", env: map[string]string{"BACKFLOW_WORKER_QUEUES": " webhooks ,webhooks"},
			check: func(c Config) bool { return strings.Join(c.WorkerQueues, ",") == "webhooks" }},
		{name: "unknown queue", env: map[string]string{"BACKFLOW_WORKER_QUEUES": "refunds,emails"},
			wantErr: `BACKFLOW_WORKER_QUEUES: unknown queue "emails"`},
		{name: "no queue", env: map[string]string{"BACKFLOW_WORKER_QUEUES": ","}, wantErr: "BACKFLOW_WORKER_QUEUES: no queue"},
		{name: "one queue for both", env: map[string]string{"BACKFLOW_TASK_QUEUE": "q", "BACKFLOW_WEBHOOK_TASK_QUEUE": "q"},
			wantErr: "BACKFLOW_WEBHOOK_TASK_QUEUE: must differ"},
		{name: "a slow endpoint holds a slot a bounded time", env: map[string]string{"BACKFLOW_WEBHOOK_TIMEOUT": "5m"},
			wantErr: "BACKFLOW_WEBHOOK_TIMEOUT: at most 60s"},
		{name: "rate", env: map[string]string{"BACKFLOW_WEBHOOK_RATE": "-1"}, wantErr: "BACKFLOW_WEBHOOK_RATE: want a number ≥ 0"},
	})
}
