package notifiers

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/mlrelay/relay/relay"
	"github.com/mlrelay/relay/relay/replicate"
	"github.com/mlrelay/relay/templates"
)

// renderedEvents are the samples and hostile variants of them: user text that tries markup,
// mentions and formatting in the prompt and the error, and a 10 kB prompt.
func renderedEvents(t *testing.T) map[string]*relay.Event {
	t.Helper()
	const hostile = "<script>alert(1)</script> & <!channel> <@U123> <http://x|y> *bold* _it_ ~s~ `code` **b** [l](https://evil.example) # h @everyone @here"
	out := sampleEvents(t)
	variant := func(name, from string, change map[string]any) {
		var p map[string]any
		for _, s := range replicate.Samples() {
			if s.Name == from {
				if err := json.Unmarshal(s.Body, &p); err != nil {
					t.Fatal(err)
				}
			}
		}
		for k, v := range change {
			p[k] = v
		}
		body, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		kind := "prediction"
		if strings.HasPrefix(from, "training") {
			kind = "training"
		}
		ev, err := relay.ParseEvent(body, "msg_"+name, kind, nil, received)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = ev
	}
	prompt := func(p string) map[string]any { return map[string]any{"prompt": p, "num_outputs": 1} }
	variant("hostile-prompt-succeeded", "prediction-succeeded.json", map[string]any{"input": prompt(hostile)})
	variant("hostile-error-failed", "prediction-failed.json", map[string]any{"input": prompt(hostile), "error": "ValueError: " + hostile})
	variant("hostile-training-failed", "training-succeeded.json", map[string]any{"status": "failed", "output": nil, "error": hostile})
	variant("long-prompt-failed", "prediction-failed.json", map[string]any{"input": prompt(strings.Repeat("a very long prompt ", 540)[:10240])})
	return out
}

// TestRenderedGolden pins what each notifier sends for the default templates, per sample and
// hostile variant: Slack's blocks, Discord's payload, and the email's MIME structure and both
// bodies. Run with -update to rewrite.
func TestRenderedGolden(t *testing.T) {
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	e := newEmail(t, EmailOptions{Host: "localhost", TLS: EmailNoTLS, From: testFrom, To: []string{testTo}})
	events := renderedEvents(t)
	names := make([]string, 0, len(events))
	for name := range events {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ev := events[name]
		for _, target := range []string{"slack", "discord", "email"} {
			t.Run(name+"/"+target, func(t *testing.T) {
				m, err := set.Render("default", target, ev)
				if err != nil {
					t.Fatal(err)
				}
				m.Rule = "golden"
				var got []byte
				switch target {
				case "slack":
					got = jsonIndent(t, slack.WebhookMessage{Text: slackText(m), Blocks: &slack.Blocks{BlockSet: slackBlocks(m, true)}})
					// slack.Blocks escapes HTML characters; undo it so the file reads as mrkdwn.
					got = []byte(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(got)))
				case "discord":
					got = jsonIndent(t, discordPayload(m).params())
				case "email":
					got = []byte(describeEmail(buildEmail(t, e, m)))
				}
				checkGolden(t, filepath.Join("testdata", "rendered", name+"."+target+".golden"), got)
				// Whatever the golden file says, nothing may ping a channel or open a tag.
				bad := map[string][]string{
					"slack":   {"<!channel>", "<script>", "<@U123>"},
					"discord": {"@everyone", "@here", "<@U123>"},
					"email":   {"<script>"},
				}[target]
				shown := got
				if target == "email" { // the subject and plain text show it as text, rightly
					_, html, _ := bytes.Cut(got, []byte("--- text/html"))
					shown = html
				}
				for _, b := range bad {
					if bytes.Contains(shown, []byte(b)) {
						t.Errorf("%s payload carries %s as it was typed", target, b)
					}
				}
			})
		}
	}
}

func jsonIndent(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRenderedDigestGolden pins what Slack and Discord are sent for the default digest of the
// sample day (the email's is in TestDigestEmailGolden). Run with -update to rewrite.
func TestRenderedDigestGolden(t *testing.T) {
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	sum := templates.SampleSummaries()[0]
	for _, target := range []string{"slack", "discord"} {
		t.Run(target, func(t *testing.T) {
			m, err := set.RenderDigest("digest", target, sum)
			if err != nil {
				t.Fatal(err)
			}
			m.Rule = "daily-failures"
			var got []byte
			switch target {
			case "slack":
				got = jsonIndent(t, slack.WebhookMessage{Text: slackText(m), Blocks: &slack.Blocks{BlockSet: slackBlocks(m, true)}})
				got = []byte(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(got)))
			case "discord":
				got = jsonIndent(t, discordPayload(m).params())
			}
			checkGolden(t, filepath.Join("testdata", "rendered", "digest."+target+".golden"), got)
			if !bytes.Contains(got, []byte("stability-ai/sdxl")) {
				t.Errorf("the %s digest lacks the model", target)
			}
		})
	}
}
