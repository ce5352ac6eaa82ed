package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	json2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mlrelay/relay/relay/replicate"
)

// sample returns the embedded sample delivery of the given name.
func sample(t testing.TB, name string) replicate.Sample {
	t.Helper()
	for _, s := range replicate.Samples() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no sample %q", name)
	return replicate.Sample{}
}

// patch returns the JSON object base with the fields of set replaced by raw JSON values and the
// fields in drop removed.
func patch(t testing.TB, base []byte, set map[string]string, drop ...string) []byte {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(base, &obj); err != nil {
		t.Fatalf("patch: %v", err)
	}
	for k, v := range set {
		obj[k] = json.RawMessage(v)
	}
	for _, k := range drop {
		delete(obj, k)
	}
	out, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("patch: %v", err)
	}
	return out
}

// minimal is the smallest body ParseEvent accepts.
const minimal = `{"id":"p1","status":"succeeded"}`

// with returns minimal with the given raw JSON fields added or replaced.
func with(t testing.TB, set map[string]string) []byte {
	t.Helper()
	return patch(t, []byte(minimal), set)
}

func mustParse(t testing.TB, body []byte, kind string) *Event {
	t.Helper()
	ev, err := ParseEvent(body, "msg_1", kind, nil, time.Time{})
	if err != nil {
		t.Fatalf("ParseEvent: %v\nbody: %s", err, body)
	}
	return ev
}

func ts(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseEventSamples(t *testing.T) {
	const (
		sdxl    = "https://replicate.delivery/pbxt/Xk3fQe9rT2bWmYp7nLs0aHcJd4uVgE1oZiR5tKwNqBy6MCvA/"
		weights = "https://replicate.delivery/pbxt/Fq8nR2sLw0XyZb4TgKc1mVh7JdPe9uAoYi3BxNs5WkQr6EtC/trained_model.tar"
		nsfw    = "NSFW content detected. Try running it again, or try a different prompt."
	)
	tests := []struct {
		name        string
		kind        string // the ?kind= parameter
		wantKind    Kind
		status      replicate.Status
		terminal    bool
		id          string
		created     string
		started     string // "" for null
		completed   string // "" for null
		duration    time.Duration
		queue       time.Duration
		predictTime float64
		files       []string
		images      []string
		errorLine   string
		newVersion  string
		weights     string
		logTail     string // LogTail(2)
		prompt      string
	}{
		{
			name: "prediction-starting.json", kind: "prediction", wantKind: KindPrediction,
			status: replicate.Starting, id: "q7vz2m5c1srj40cjx3kr8f1n2w",
			created: "2025-05-01T18:29:28.326Z",
			prompt:  "an astronaut riding a horse on mars, 35mm photo",
		},
		{
			name: "prediction-starting.json", kind: "", wantKind: KindPrediction,
			status: replicate.Starting, id: "q7vz2m5c1srj40cjx3kr8f1n2w",
			created: "2025-05-01T18:29:28.326Z",
			prompt:  "an astronaut riding a horse on mars, 35mm photo",
		},
		{
			name: "prediction-succeeded.json", kind: "prediction", wantKind: KindPrediction,
			status: replicate.Succeeded, terminal: true, id: "q7vz2m5c1srj40cjx3kr8f1n2w",
			created:     "2025-05-01T18:29:28.326Z",
			started:     "2025-05-01T18:29:28.332111Z",
			completed:   "2025-05-01T18:29:38.017420Z",
			duration:    9*time.Second + 685309*time.Microsecond,
			queue:       6111 * time.Microsecond,
			predictTime: 9.685309,
			files:       []string{sdxl + "out-0.png", sdxl + "out-1.png"},
			images:      []string{sdxl + "out-0.png", sdxl + "out-1.png"},
			logTail:     " 50%|█████     | 25/50 [00:04<00:04,  5.61it/s]\n100%|██████████| 50/50 [00:08<00:00,  5.60it/s]",
			prompt:      "an astronaut riding a horse on mars, 35mm photo",
		},
		{
			name: "prediction-failed.json", kind: "", wantKind: KindPrediction,
			status: replicate.Failed, terminal: true, id: "h2pq8d1rbnrj00cjx3ksw6tk5g",
			created:     "2025-05-01T18:31:02.114Z",
			started:     "2025-05-01T18:31:02.120874Z",
			completed:   "2025-05-01T18:31:11.402315Z",
			duration:    9*time.Second + 281441*time.Microsecond,
			queue:       6874 * time.Microsecond,
			predictTime: 9.281441,
			errorLine:   nsfw,
			logTail:     "    raise Exception(\"" + nsfw + "\")\nException: " + nsfw,
			prompt:      "a photo of a rainbow colored corgi",
		},
		{
			name: "training-succeeded.json", kind: "training", wantKind: KindTraining,
			status: replicate.Succeeded, terminal: true, id: "zz4ibbonubfz7carwiefibzgga",
			created:     "2025-05-01T16:32:57.018467Z",
			started:     "2025-05-01T16:32:57.112647Z",
			completed:   "2025-05-01T16:41:19.826523Z",
			duration:    8*time.Minute + 22*time.Second + 713876*time.Microsecond,
			queue:       94180 * time.Microsecond,
			predictTime: 502.713876,
			files:       []string{weights},
			newVersion:  "acme/sdxl-brand-style:7c8a2bd1f0e94f5e9a4bb1f7c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b",
			weights:     weights,
			logTail:     "100%|██████████| 1000/1000 [08:10<00:00,  2.04it/s]\nSaving trained_model.tar",
		},
		{
			// No ?kind= on the hook URL: the /trainings/ URL and the weights output give it away.
			name: "training-succeeded.json", kind: "", wantKind: KindTraining,
			status: replicate.Succeeded, terminal: true, id: "zz4ibbonubfz7carwiefibzgga",
			created:     "2025-05-01T16:32:57.018467Z",
			started:     "2025-05-01T16:32:57.112647Z",
			completed:   "2025-05-01T16:41:19.826523Z",
			duration:    8*time.Minute + 22*time.Second + 713876*time.Microsecond,
			queue:       94180 * time.Microsecond,
			predictTime: 502.713876,
			files:       []string{weights},
			newVersion:  "acme/sdxl-brand-style:7c8a2bd1f0e94f5e9a4bb1f7c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b",
			weights:     weights,
			logTail:     "100%|██████████| 1000/1000 [08:10<00:00,  2.04it/s]\nSaving trained_model.tar",
		},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.name] = true
		kindName := tt.kind
		if kindName == "" {
			kindName = "guessed"
		}
		t.Run(tt.name+"/"+kindName, func(t *testing.T) {
			s := sample(t, tt.name)
			meta := map[string]string{"kind": tt.kind, "team": "vision"}
			received := time.Date(2025, 5, 1, 18, 40, 0, 123, time.UTC)
			ev, err := ParseEvent(s.Body, s.MessageID, tt.kind, meta, received)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if ev.Kind != tt.wantKind {
				t.Errorf("Kind = %q, want %q", ev.Kind, tt.wantKind)
			}
			if string(ev.Kind) != s.Kind {
				t.Errorf("Kind = %q, but the sample is a %s", ev.Kind, s.Kind)
			}
			if ev.Status != tt.status || ev.Status != s.Status {
				t.Errorf("Status = %q, want %q", ev.Status, tt.status)
			}
			if ev.Terminal() != tt.terminal {
				t.Errorf("Terminal() = %v, want %v", ev.Terminal(), tt.terminal)
			}
			if ev.ID != tt.id || ev.MessageID != s.MessageID {
				t.Errorf("ID, MessageID = %q, %q; want %q, %q", ev.ID, ev.MessageID, tt.id, s.MessageID)
			}
			if !reflect.DeepEqual(ev.Meta, meta) || !ev.ReceivedAt.Equal(received) {
				t.Errorf("Meta, ReceivedAt = %v, %v; want %v, %v", ev.Meta, ev.ReceivedAt, meta, received)
			}
			if ev.Model != "stability-ai/sdxl" || len(ev.Version) != 64 || ev.Source != "api" {
				t.Errorf("Model, Version, Source = %q, %q, %q", ev.Model, ev.Version, ev.Source)
			}
			checkTime(t, "CreatedAt", ev.CreatedAt, tt.created)
			checkTime(t, "StartedAt", ev.StartedAt, tt.started)
			checkTime(t, "CompletedAt", ev.CompletedAt, tt.completed)
			if got := ev.Duration(); got != tt.duration {
				t.Errorf("Duration() = %s, want %s", got, tt.duration)
			}
			if got := ev.QueueTime(); got != tt.queue {
				t.Errorf("QueueTime() = %s, want %s", got, tt.queue)
			}
			if got := ev.PredictTime(); got != tt.predictTime {
				t.Errorf("PredictTime() = %v, want %v", got, tt.predictTime)
			}
			if tt.predictTime == 0 && len(ev.Metrics) != 0 {
				t.Errorf("Metrics = %v, want empty", ev.Metrics)
			}
			if got := ev.Files(); !reflect.DeepEqual(got, tt.files) {
				t.Errorf("Files() = %q, want %q", got, tt.files)
			}
			if got := ev.Images(); !reflect.DeepEqual(got, tt.images) {
				t.Errorf("Images() = %q, want %q", got, tt.images)
			}
			if got := ev.ErrorLine(); got != tt.errorLine {
				t.Errorf("ErrorLine() = %q, want %q", got, tt.errorLine)
			}
			if got := ev.NewVersion(); got != tt.newVersion {
				t.Errorf("NewVersion() = %q, want %q", got, tt.newVersion)
			}
			if got := ev.Weights(); got != tt.weights {
				t.Errorf("Weights() = %q, want %q", got, tt.weights)
			}
			if got := ev.LogTail(2); got != tt.logTail {
				t.Errorf("LogTail(2) = %q, want %q", got, tt.logTail)
			}
			if got := ev.Prompt(); got != tt.prompt {
				t.Errorf("Prompt() = %q, want %q", got, tt.prompt)
			}
			if got, want := ev.WebURL(), "https://replicate.com/p/"+tt.id; got != want {
				t.Errorf("WebURL() = %q, want %q", got, want)
			}
		})
	}
	for _, s := range replicate.Samples() {
		if !seen[s.Name] {
			t.Errorf("sample %s has no case", s.Name)
		}
	}
}

func checkTime(t *testing.T, field string, got time.Time, want string) {
	t.Helper()
	if want == "" {
		if !got.IsZero() {
			t.Errorf("%s = %s, want zero (null)", field, got)
		}
		return
	}
	if w := ts(t, want); !got.Equal(w) {
		t.Errorf("%s = %s, want %s", field, got.Format(time.RFC3339Nano), want)
	}
}

func TestParseEventKind(t *testing.T) {
	training := sample(t, "training-succeeded.json").Body
	prediction := sample(t, "prediction-succeeded.json").Body
	// Only the output gives this training away: its URLs look like a prediction's.
	weightsOnly := patch(t, training, map[string]string{
		"urls": `{"get":"https://api.replicate.com/v1/predictions/zz4","web":"https://replicate.com/p/zz4"}`,
	})
	cancelOnly := patch(t, prediction, map[string]string{
		"urls": `{"cancel":"https://api.replicate.com/v1/trainings/zz4/cancel"}`,
	})
	tests := []struct {
		name    string
		body    []byte
		kind    string
		want    Kind
		wantErr string
	}{
		{name: "training by parameter", body: training, kind: "training", want: KindTraining},
		{name: "training by urls.get", body: training, want: KindTraining},
		{name: "training by weights output", body: weightsOnly, want: KindTraining},
		{name: "training by urls.cancel", body: cancelOnly, want: KindTraining},
		{name: "training while starting", body: with(t, map[string]string{
			"status": `"starting"`, "output": `null`,
			"urls": `{"get":"https://api.replicate.com/v1/trainings/t1"}`,
		}), want: KindTraining},
		{name: "null weights is no hint", body: with(t, map[string]string{"output": `{"weights":null,"version":"a/b:c"}`}), want: KindPrediction},
		{name: "object output without weights", body: with(t, map[string]string{"output": `{"text":"hi"}`}), want: KindPrediction},
		{name: "parameter wins over hints", body: training, kind: "prediction", want: KindPrediction},
		{name: "prediction by parameter", body: prediction, kind: "prediction", want: KindPrediction},
		{name: "prediction guessed", body: prediction, want: KindPrediction},
		{name: "prediction said to be training", body: prediction, kind: "training", want: KindTraining},
		{name: "unknown kind", body: prediction, kind: "model", wantErr: `unknown kind "model"`},
		{name: "kind is case-sensitive", body: prediction, kind: "Training", wantErr: "unknown kind"},
		{name: "long kind truncated", body: prediction, kind: strings.Repeat("k", 500), wantErr: strings.Repeat("k", 39) + "…\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent(tt.body, "msg", tt.kind, nil, time.Time{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseEvent error = %v, want one containing %q", err, tt.wantErr)
				}
				if ev != nil {
					t.Errorf("ParseEvent returned an event with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if ev.Kind != tt.want {
				t.Errorf("Kind = %q, want %q", ev.Kind, tt.want)
			}
		})
	}
}

func TestParseEventTimes(t *testing.T) {
	tests := []struct {
		name                       string
		set                        map[string]string
		created, started, complete string
		duration, queue            time.Duration
	}{
		{
			name:    "microseconds",
			set:     map[string]string{"created_at": `"2025-05-01T18:29:28.326000Z"`, "started_at": `"2025-05-01T18:29:28.332111Z"`, "completed_at": `"2025-05-01T18:29:38.017420Z"`},
			created: "2025-05-01T18:29:28.326Z", started: "2025-05-01T18:29:28.332111Z", complete: "2025-05-01T18:29:38.01742Z",
			duration: 9685309 * time.Microsecond, queue: 6111 * time.Microsecond,
		},
		{
			name:    "nanoseconds",
			set:     map[string]string{"created_at": `"2025-05-01T18:29:28.000000001Z"`, "started_at": `"2025-05-01T18:29:28.123456789Z"`, "completed_at": `"2025-05-01T18:29:29.123456790Z"`},
			created: "2025-05-01T18:29:28.000000001Z", started: "2025-05-01T18:29:28.123456789Z", complete: "2025-05-01T18:29:29.12345679Z",
			duration: time.Second + 1, queue: 123456788,
		},
		{
			name:    "whole seconds and an offset",
			set:     map[string]string{"created_at": `"2025-05-01T20:29:28+02:00"`, "started_at": `"2025-05-01T18:29:30Z"`, "completed_at": `"2025-05-01T18:30:30Z"`},
			created: "2025-05-01T18:29:28Z", started: "2025-05-01T18:29:30Z", complete: "2025-05-01T18:30:30Z",
			duration: time.Minute, queue: 2 * time.Second,
		},
		{
			name:    "not started",
			set:     map[string]string{"created_at": `"2025-05-01T18:29:28.326Z"`, "started_at": `null`, "completed_at": `null`},
			created: "2025-05-01T18:29:28.326Z",
		},
		{
			name:    "aborted before start",
			set:     map[string]string{"status": `"aborted"`, "created_at": `"2025-05-01T18:29:28Z"`, "started_at": `null`, "completed_at": `"2025-05-01T18:34:28Z"`},
			created: "2025-05-01T18:29:28Z", complete: "2025-05-01T18:34:28Z",
		},
		{
			name:    "started, not completed",
			set:     map[string]string{"status": `"processing"`, "created_at": `"2025-05-01T18:29:28Z"`, "started_at": `"2025-05-01T18:29:29.5Z"`, "completed_at": `null`},
			created: "2025-05-01T18:29:28Z", started: "2025-05-01T18:29:29.5Z",
			queue: 1500 * time.Millisecond,
		},
		{name: "all absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := mustParse(t, with(t, tt.set), "")
			checkTime(t, "CreatedAt", ev.CreatedAt, tt.created)
			checkTime(t, "StartedAt", ev.StartedAt, tt.started)
			checkTime(t, "CompletedAt", ev.CompletedAt, tt.complete)
			if got := ev.Duration(); got != tt.duration {
				t.Errorf("Duration() = %s, want %s", got, tt.duration)
			}
			if got := ev.QueueTime(); got != tt.queue {
				t.Errorf("QueueTime() = %s, want %s", got, tt.queue)
			}
		})
	}
}

func TestEventMetrics(t *testing.T) {
	tests := []struct {
		name    string
		metrics string // raw JSON; "" leaves the field out
		want    float64
	}{
		{"done", `{"predict_time": 9.685309, "total_time": 9.69142}`, 9.685309},
		{"integer", `{"predict_time": 3}`, 3},
		{"language model", `{"predict_time": 1.5, "input_token_count": 12, "output_token_count": 80, "tokens_per_second": 53.3}`, 1.5},
		{"empty until done", `{}`, 0},
		{"null", `null`, 0},
		{"absent", "", 0},
		{"string", `{"predict_time": "9.6"}`, 0},
		{"null predict_time", `{"predict_time": null}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := map[string]string{}
			if tt.metrics != "" {
				set["metrics"] = tt.metrics
			}
			ev := mustParse(t, with(t, set), "")
			if got := ev.PredictTime(); got != tt.want {
				t.Errorf("PredictTime() = %v, want %v", got, tt.want)
			}
		})
	}
	ev := mustParse(t, with(t, map[string]string{"metrics": `{"predict_time": 1.5, "output_token_count": 80}`}), "")
	if got := ev.Metrics["output_token_count"]; got != float64(80) {
		t.Errorf("Metrics[output_token_count] = %v, want 80", got)
	}
}

func TestEventOutput(t *testing.T) {
	const d = "https://replicate.delivery/pbxt/abc/"
	tests := []struct {
		name       string
		output     string // raw JSON; "" leaves the field out
		value      any
		files      []string
		images     []string
		newVersion string
		weights    string
	}{
		{name: "absent"},
		{name: "null", output: `null`},
		{name: "single URL", output: `"` + d + `out.webp"`, value: d + "out.webp", files: []string{d + "out.webp"}, images: []string{d + "out.webp"}},
		{name: "single non-image URL", output: `"` + d + `speech.wav"`, value: d + "speech.wav", files: []string{d + "speech.wav"}},
		{
			name:   "list of URLs",
			output: `["` + d + `a.png", "` + d + `b.JPG", "` + d + `c.jpeg?x=1", "` + d + `d.gif", "` + d + `e.mp4", "` + d + `f.tar", "http://` + `example.com/g.webp"]`,
			value:  []any{d + "a.png", d + "b.JPG", d + "c.jpeg?x=1", d + "d.gif", d + "e.mp4", d + "f.tar", "http://example.com/g.webp"},
			files:  []string{d + "a.png", d + "b.JPG", d + "c.jpeg?x=1", d + "d.gif", d + "e.mp4", d + "f.tar", "http://example.com/g.webp"},
			images: []string{d + "a.png", d + "b.JPG", d + "c.jpeg?x=1", d + "d.gif", "http://example.com/g.webp"},
		},
		{
			name:   "no images among files",
			output: `["` + d + `song.mp3", "` + d + `video.mp4", "` + d + `weights.safetensors", "` + d + `noext"]`,
			value:  []any{d + "song.mp3", d + "video.mp4", d + "weights.safetensors", d + "noext"},
			files:  []string{d + "song.mp3", d + "video.mp4", d + "weights.safetensors", d + "noext"},
		},
		{
			name:   "image extension in query only",
			output: `["` + d + `file?name=x.png"]`,
			value:  []any{d + "file?name=x.png"},
			files:  []string{d + "file?name=x.png"},
		},
		{
			name:   "object with nested URLs",
			output: `{"text": "a cat", "images": ["` + d + `1.png", {"url": "` + d + `2.png"}], "audio": {"url": "` + d + `a.wav", "seconds": 3}, "n": 2}`,
			value: map[string]any{
				"text": "a cat", "n": float64(2),
				"images": []any{d + "1.png", map[string]any{"url": d + "2.png"}},
				"audio":  map[string]any{"url": d + "a.wav", "seconds": float64(3)},
			},
			// Object keys are walked in sorted order: audio, images, n, text.
			files:  []string{d + "a.wav", d + "1.png", d + "2.png"},
			images: []string{d + "1.png", d + "2.png"},
		},
		{name: "number", output: `42.5`, value: 42.5},
		{name: "boolean", output: `true`, value: true},
		{name: "non-URL string", output: `"a watercolour of a corgi"`, value: "a watercolour of a corgi"},
		{name: "streamed tokens", output: `["Hello", ",", " world", "!"]`, value: []any{"Hello", ",", " world", "!"}},
		{name: "empty list", output: `[]`, value: []any{}},
		{
			name:   "not http URLs",
			output: `["ftp://example.com/a.png", "data:image/png;base64,AAAA", "https://", "https:///a.png", "replicate.delivery/a.png", " https://example.com/a.png"]`,
			value:  []any{"ftp://example.com/a.png", "data:image/png;base64,AAAA", "https://", "https:///a.png", "replicate.delivery/a.png", " https://example.com/a.png"},
		},
		{
			name:       "training output",
			output:     `{"version": "acme/model:abc", "weights": "` + d + `trained_model.tar"}`,
			value:      map[string]any{"version": "acme/model:abc", "weights": d + "trained_model.tar"},
			files:      []string{d + "trained_model.tar"},
			newVersion: "acme/model:abc",
			weights:    d + "trained_model.tar",
		},
		{
			name:   "training output of the wrong types",
			output: `{"version": 3, "weights": ["` + d + `w.tar"]}`,
			value:  map[string]any{"version": float64(3), "weights": []any{d + "w.tar"}},
			files:  []string{d + "w.tar"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := map[string]string{}
			if tt.output != "" {
				set["output"] = tt.output
			}
			ev := mustParse(t, with(t, set), "prediction")
			for i := range 2 { // the second round reads the cached decoding
				if got := ev.OutputValue(); !reflect.DeepEqual(got, tt.value) {
					t.Errorf("round %d: OutputValue() = %#v, want %#v", i, got, tt.value)
				}
				if got := ev.Files(); !reflect.DeepEqual(got, tt.files) {
					t.Errorf("round %d: Files() = %q, want %q", i, got, tt.files)
				}
				if got := ev.Images(); !reflect.DeepEqual(got, tt.images) {
					t.Errorf("round %d: Images() = %q, want %q", i, got, tt.images)
				}
			}
			if got := ev.NewVersion(); got != tt.newVersion {
				t.Errorf("NewVersion() = %q, want %q", got, tt.newVersion)
			}
			if got := ev.Weights(); got != tt.weights {
				t.Errorf("Weights() = %q, want %q", got, tt.weights)
			}
		})
	}
}

func TestEventErrorLine(t *testing.T) {
	long := strings.Repeat("é", 400)
	tests := []struct {
		name  string
		error string // raw JSON; "" leaves the field out
		want  string
	}{
		{name: "absent", want: ""},
		{name: "null", error: `null`, want: ""},
		{name: "empty", error: `""`, want: ""},
		{name: "blank", error: `" \n\t\n "`, want: ""},
		{name: "one line", error: `"CUDA out of memory"`, want: "CUDA out of memory"},
		{
			name:  "traceback",
			error: `"Traceback (most recent call last):\n  File \"/src/predict.py\", line 412, in predict\n    raise ValueError(\"bad input\")\nValueError: width must be a multiple of 8\n\n  \n"`,
			want:  "ValueError: width must be a multiple of 8",
		},
		{name: "windows line ends", error: `"first\r\nsecond line\r\n"`, want: "second line"},
		{name: "indented last line", error: `"error:\n    details here   "`, want: "details here"},
		{name: "long line", error: `"short\n` + long + `"`, want: strings.Repeat("é", 299) + "…"},
		{name: "exactly 300 runes", error: `"` + strings.Repeat("é", 300) + `"`, want: strings.Repeat("é", 300)},
		{name: "object", error: `{"detail": "model crashed", "code": 137}`, want: `{"detail":"model crashed","code":137}`},
		{name: "object over several lines", error: "{\n  \"detail\": \"model crashed\",\n  \"code\": 137\n}", want: `{"detail":"model crashed","code":137}`},
		{name: "number", error: `137`, want: "137"},
		{name: "list", error: `["a","b"]`, want: `["a","b"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Built by hand rather than with patch, which would compact the raw JSON.
			body := `{"id":"p1","status":"failed"}`
			if tt.error != "" {
				body = `{"id":"p1","status":"failed","error":` + tt.error + `}`
			}
			ev := mustParse(t, []byte(body), "")
			got := ev.ErrorLine()
			if got != tt.want {
				t.Errorf("ErrorLine() = %q, want %q", got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > 300 || strings.Contains(got, "\n") {
				t.Errorf("ErrorLine() is %d runes or several lines: %q", n, got)
			}
		})
	}
}

func TestEventLogTail(t *testing.T) {
	tests := []struct {
		name string
		logs string // raw JSON; "" leaves the field out
		n    int
		want string
	}{
		{name: "absent", n: 5, want: ""},
		{name: "null", logs: `null`, n: 5, want: ""},
		{name: "fewer lines than asked", logs: `"a\nb\n"`, n: 5, want: "a\nb"},
		{name: "last lines", logs: `"1\n2\n3\n4\n5\n6\n7\n"`, n: 3, want: "5\n6\n7"},
		{name: "no trailing newline", logs: `"1\n2\n3"`, n: 2, want: "2\n3"},
		{name: "zero lines", logs: `"1\n2"`, n: 0, want: ""},
		{name: "negative", logs: `"1\n2"`, n: -1, want: ""},
		{name: "only newlines", logs: `"\n\n\n"`, n: 2, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := map[string]string{}
			if tt.logs != "" {
				set["logs"] = tt.logs
			}
			ev := mustParse(t, with(t, set), "")
			if got := ev.LogTail(tt.n); got != tt.want {
				t.Errorf("LogTail(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}

func TestEventWebURL(t *testing.T) {
	tests := []struct {
		name string
		id   string
		urls string // raw JSON; "" leaves the field out
		want string
	}{
		{name: "given", id: "abc", urls: `{"web": "https://replicate.com/p/abc"}`, want: "https://replicate.com/p/abc"},
		{name: "other page", id: "abc", urls: `{"web": "https://replicate.com/acme/model/p/abc"}`, want: "https://replicate.com/acme/model/p/abc"},
		{name: "urls absent", id: "abc", want: "https://replicate.com/p/abc"},
		{name: "urls null", id: "abc", urls: `null`, want: "https://replicate.com/p/abc"},
		{name: "web absent", id: "abc", urls: `{"get": "https://api.replicate.com/v1/predictions/abc"}`, want: "https://replicate.com/p/abc"},
		{name: "web empty", id: "abc", urls: `{"web": ""}`, want: "https://replicate.com/p/abc"},
		{name: "odd id escaped", id: "a/b c?d", want: "https://replicate.com/p/a%2Fb%20c%3Fd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _ := json.Marshal(tt.id)
			set := map[string]string{"id": string(id)}
			if tt.urls != "" {
				set["urls"] = tt.urls
			}
			ev := mustParse(t, with(t, set), "")
			if got := ev.WebURL(); got != tt.want {
				t.Errorf("WebURL() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseEventUnknownFields(t *testing.T) {
	base := sample(t, "prediction-succeeded.json").Body
	body := patch(t, base, map[string]string{
		"brand_new_field":  `{"nested": [1, 2, {"deep": true}]}`,
		"deadline":         `"2025-05-01T19:29:28Z"`,
		"deployment":       `"acme/sdxl-prod"`,
		"urls":             `{"get": "https://api.replicate.com/v1/predictions/q7", "web": "https://replicate.com/p/q7", "stream": "https://stream.replicate.com/v1/q7", "future": "x"}`,
		"metrics":          `{"predict_time": 1.25, "image_count": 2, "gpu": {"kind": "a100"}}`,
		"webhook_headers":  `null`,
		"data_removed":     `true`,
		"schema_revision":  `7`,
		"input_file_count": `0`,
	})
	ev := mustParse(t, body, "")
	if ev.Status != replicate.Succeeded || ev.Kind != KindPrediction || ev.Deployment != "acme/sdxl-prod" || !ev.DataRemoved {
		t.Errorf("Status, Kind, Deployment, DataRemoved = %q, %q, %q, %v", ev.Status, ev.Kind, ev.Deployment, ev.DataRemoved)
	}
	if ev.URLs.Stream != "https://stream.replicate.com/v1/q7" || ev.PredictTime() != 1.25 {
		t.Errorf("URLs.Stream, PredictTime = %q, %v", ev.URLs.Stream, ev.PredictTime())
	}
	if len(ev.Images()) != 2 {
		t.Errorf("Images() = %q, want the two outputs", ev.Images())
	}
	if !reflect.DeepEqual(ev.WebhookEventsFilter, []string{"start", "completed"}) {
		t.Errorf("WebhookEventsFilter = %q", ev.WebhookEventsFilter)
	}
}

func TestParseEventStatuses(t *testing.T) {
	for _, s := range replicate.Statuses {
		t.Run(string(s), func(t *testing.T) {
			ev := mustParse(t, with(t, map[string]string{"status": `"` + string(s) + `"`}), "")
			if ev.Status != s || ev.Terminal() != s.Terminal() {
				t.Errorf("Status, Terminal() = %q, %v", ev.Status, ev.Terminal())
			}
		})
	}
}

func TestParseEventErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // part of the error message
	}{
		{"empty body", ``, "malformed payload"},
		{"not JSON", `<html>502 Bad Gateway</html>`, "malformed payload"},
		{"truncated", `{"id":"p1","status":"succ`, "malformed payload"},
		{"trailing garbage", minimal + `}`, "malformed payload"},
		{"null", `null`, "no id"},
		{"array", `[` + minimal + `]`, "malformed payload"},
		{"string", `"p1"`, "malformed payload"},
		{"empty object", `{}`, "no id"},
		{"missing id", `{"status":"succeeded"}`, "no id"},
		{"empty id", `{"id":"","status":"succeeded"}`, "no id"},
		{"null id", `{"id":null,"status":"succeeded"}`, "no id"},
		{"numeric id", `{"id":42,"status":"succeeded"}`, "malformed payload"},
		{"missing status", `{"id":"p1"}`, "no status"},
		{"null status", `{"id":"p1","status":null}`, "no status"},
		{"unknown status", `{"id":"p1","status":"queued"}`, `unknown status "queued"`},
		{"status in capitals", `{"id":"p1","status":"Succeeded"}`, `unknown status "Succeeded"`},
		{"long unknown status", `{"id":"p1","status":"` + strings.Repeat("s", 1000) + `"}`, strings.Repeat("s", 39) + `…"`},
		{"bad timestamp", `{"id":"p1","status":"succeeded","created_at":"yesterday"}`, "malformed payload"},
		{"input not an object", `{"id":"p1","status":"succeeded","input":"prompt"}`, "malformed payload"},
		{"metrics not an object", `{"id":"p1","status":"succeeded","metrics":[1]}`, "malformed payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent([]byte(tt.body), "msg", "", nil, time.Time{})
			if err == nil {
				t.Fatalf("ParseEvent succeeded (%+v), want an error containing %q", ev, tt.want)
			}
			if ev != nil {
				t.Errorf("ParseEvent returned an event with its error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes long; it should not echo the payload", len(err.Error()))
			}
		})
	}
	// The JSON error stays reachable for callers that want it.
	_, err := ParseEvent([]byte(`{"id":`), "msg", "", nil, time.Time{})
	var syntax *jsontext.SyntacticError
	if !errors.As(err, &syntax) {
		t.Errorf("error %v does not wrap the *jsontext.SyntacticError", err)
	}
}

// checkedNames reads CheckEvent's errors as ParseEvent's: they differ only in the Go type
// they name.
var checkedNames = strings.NewReplacer("relay.checkedPrediction", "replicate.Prediction", "relay.skippedText", "replicate.Text")

func FuzzParseEvent(f *testing.F) {
	for _, s := range replicate.Samples() {
		f.Add(s.Body, "")
		f.Add(s.Body, s.Kind)
	}
	for _, body := range []string{
		minimal,
		`{"id":"p1","status":"succeeded","output":null}`,
		`{"id":"p1","status":"succeeded","output":"https://replicate.delivery/a/out.png"}`,
		`{"id":"p1","status":"succeeded","output":{"a":{"b":["https://x.example/1.gif",{"c":"http://y.example/2.webp"}]}}}`,
		`{"id":"p1","status":"succeeded","output":42}`,
		`{"id":"p1","status":"succeeded","output":"just words"}`,
		`{"id":"p1","status":"succeeded","output":{"version":"a/b:c","weights":"https://w.example/w.tar"}}`,
		`{"id":"p1","status":"failed","error":{"detail":"boom"},"logs":"a\nb\nc\n\n"}`,
		`{"id":"p1", "status": "failed", "error": {"code": 7, "detail": "boom"}, "logs": ["a", "b"]}`,
		"{\"id\":\"p1\",\"status\":\"failed\",\"error\":\"bad \xff byte\",\"logs\":\"\xc3\"}",
		`{"id":"p1","status":"failed","error":"line 1\n\n` + strings.Repeat("x", 400) + `\n  "}`,
		`{"id":"p1","status":"processing","started_at":"2025-05-01T18:29:28.332111789Z","completed_at":null}`,
		`{"id":"p1","status":"succeeded","metrics":{"predict_time":"fast"},"urls":{"web":""}}`,
		`{"id":"p1","status":"starting","urls":{"get":"https://api.replicate.com/v1/trainings/p1"}}`,
		`{"id":"\u0000\ud800","status":"canceled","logs":"\r\n\r\n"}`,
		`{"id":"p1","model":"a/b","status":"succeeded","logs":"tok \ud83d","error":"caf\udce9"}`,
		`{"id":"p1","status":"queued"}`,
		`{"status":"succeeded"}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(body), "")
	}
	f.Add([]byte(minimal), "model")

	f.Fuzz(func(t *testing.T, body []byte, kind string) {
		orig := bytes.Clone(body)
		defer func() {
			// The receiver stores the very bytes it parsed: parsing must not change them.
			if !bytes.Equal(body, orig) {
				t.Fatalf("parsing changed the body %q to %q", orig, body)
			}
		}()
		checkHeadAgrees(t, body, kind)
		ev, err := ParseEvent(body, "msg", kind, map[string]string{"k": "v"}, time.Unix(0, 0))
		if cerr := CheckEvent(body, kind); (cerr == nil) != (err == nil) || err != nil && checkedNames.Replace(cerr.Error()) != err.Error() {
			t.Fatalf("CheckEvent says %v, ParseEvent %v", cerr, err)
		}
		if err != nil {
			if ev != nil {
				t.Fatalf("ParseEvent returned an event with error %v", err)
			}
			return
		}
		if ev.ID == "" {
			t.Fatalf("event without an id from %q", body)
		}
		if !ev.Status.Known() {
			t.Fatalf("event with unknown status %q", ev.Status)
		}
		if ev.Kind != KindPrediction && ev.Kind != KindTraining {
			t.Fatalf("event with unknown kind %q", ev.Kind)
		}
		for _, f := range ev.Files() {
			if !strings.HasPrefix(f, "http://") && !strings.HasPrefix(f, "https://") {
				t.Fatalf("Files() lists %q", f)
			}
		}
		if len(ev.Images()) > len(ev.Files()) {
			t.Fatalf("more images than files")
		}
		if n := utf8.RuneCountInString(ev.ErrorLine()); n > 300 {
			t.Fatalf("ErrorLine() is %d runes", n)
		}
		_ = ev.Duration()
		_ = ev.QueueTime()
		_ = ev.PredictTime()
		_ = ev.NewVersion()
		_ = ev.Weights()
		_ = ev.WebURL()
		_ = ev.Prompt()
		_ = ev.Terminal()
		if tail := ev.LogTail(5); strings.Count(tail, "\n") > 4 {
			t.Fatalf("LogTail(5) has more than 5 lines: %q", tail)
		}
	})
}

// checkHeadAgrees holds ParseHead, the receiver's fast path, to ParseEvent: whatever the full
// parse accepts, the head parse accepts too, with the same routing fields. (The head parse may
// accept more: bodies it lets through are never stored.)
func checkHeadAgrees(t *testing.T, body []byte, kind string) {
	t.Helper()
	full, err := ParseEvent(body, "msg", kind, nil, time.Unix(0, 0))
	if err != nil {
		return
	}
	h, err := ParseHead(body, "msg", kind, nil, time.Unix(0, 0))
	if err != nil {
		t.Fatalf("ParseEvent accepted %q but ParseHead refused it: %v", body, err)
	}
	if h.ID != full.ID || h.Status != full.Status || h.Kind != full.Kind || h.Model != full.Model ||
		h.Version != full.Version || h.Source != full.Source || h.Deployment != full.Deployment || h.URLs != full.URLs {
		t.Fatalf("head %+v differs from full %+v for %q", h.Prediction, full.Prediction, body)
	}
}

func TestParseHeadAgreesOnSamples(t *testing.T) {
	for _, s := range replicate.Samples() {
		for _, kind := range []string{"", s.Kind} {
			checkHeadAgrees(t, s.Body, kind)
		}
	}
	// Duplicate names and invalid UTF-8: as lenient as the full parse.
	checkHeadAgrees(t, []byte(`{"id":"a","id":"b","status":"processing"}`), "")
	checkHeadAgrees(t, []byte("{\"id\":\"p\xff\",\"status\":\"processing\",\"logs\":\"\xfe\"}"), "")
	if _, err := ParseHead([]byte(`{"id":"p","status":"processing","logs":"x"`), "m", "", nil, time.Time{}); err == nil {
		t.Fatal("ParseHead accepted truncated JSON")
	}
}

// Invalid UTF-8 in the text fields is read as encoding/json reads it, each bad byte U+FFFD,
// rather than refusing an event that the head parse, and so the receiver's routing, accepted.
func TestParseEventReadsInvalidUTF8(t *testing.T) {
	body := []byte("{\"id\":\"p1\",\"status\":\"failed\",\"error\":\"CUDA \xff error\",\"logs\":\"step \xc3\\n\"}")
	ev, err := ParseEvent(body, "msg", "", nil, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Error != "CUDA \uFFFD error" || ev.Logs != "step \uFFFD\n" {
		t.Errorf("error %q, logs %q", ev.Error, ev.Logs)
	}
}

// BenchmarkParseEvent compares the full parse (the dispatcher's) with the check the receiver
// makes of an event it stores, on a terminal event with 8 KiB of progress-bar logs.
func BenchmarkParseEvent(b *testing.B) {
	logs := strings.Repeat(`100%|\u2588\u2588\u2588\u2588| 50/50 [00:08<00:00,  5.60it/s]\r\n`, 140)
	body := []byte(`{"id":"p1","model":"a/b","version":"v","input":{"prompt":"a cat","seed":7},"logs":"` + logs +
		`","output":["https://replicate.delivery/a/out-0.png"],"error":null,"status":"succeeded",` +
		`"created_at":"2025-05-01T18:29:28.326000Z","started_at":"2025-05-01T18:29:28.332111Z",` +
		`"completed_at":"2025-05-01T18:29:38.1Z","metrics":{"predict_time":9.7},"urls":{"web":"https://replicate.com/p/p1"}}`)
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseEvent(body, "m", "prediction", nil, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := CheckEvent(body, "prediction"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// checkedPrediction decodes every field replicate.Prediction decodes but logs and error, which
// it skips (its own fields hide the embedded ones).
func TestCheckedPredictionSkipsOnlyLogsAndError(t *testing.T) {
	for _, smp := range replicate.Samples() {
		ev, err := ParseEvent(smp.Body, "m", smp.Kind, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var p checkedPrediction
		if err := json2.Unmarshal(smp.Body, &p, parseOptions); err != nil {
			t.Fatal(err)
		}
		if p.Prediction.Logs != "" || p.Prediction.Error != "" {
			t.Errorf("%s: logs or error were read: %q %q", smp.Name, p.Prediction.Logs, p.Prediction.Error)
		}
		want := ev.Prediction
		want.Logs, want.Error = "", ""
		if !reflect.DeepEqual(p.Prediction, want) {
			t.Errorf("%s: read %+v, want %+v", smp.Name, p.Prediction, want)
		}
	}
}
