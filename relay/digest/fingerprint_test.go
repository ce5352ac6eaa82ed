package digest

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFingerprint(t *testing.T) {
	tests := []struct{ in, want string }{
		{"CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 39.59 GiB total capacity)",
			"CUDA out of memory. Tried to allocate <size> (GPU <n>; <size> total capacity)"},
		{"buffer of 512MB exceeds 100 bytes, 3 B, 7 Bananas", "buffer of <size> exceeds <size>, <size>, <n> Bananas"},
		{"File /tmp/abc123/x.png not found", "File <path> not found"},
		{`FileNotFoundError: [Errno 2] No such file or directory: '/src/weights/model.safetensors'`,
			"FileNotFoundError: [Errno <n>] No such file or directory: <str>"},
		{"Prediction h2pq8d1rbnrj00cjx3ksw6tk5g timed out after 300s", "Prediction <id> timed out after <n>s"},
		{"request 123e4567-e89b-12d3-a456-426614174000 failed", "request <uuid> failed"},
		{"segfault at 0x7ffd5e8c and sha 39ed52f2a78e934b", "segfault at <hex> and sha <hex>"},
		{"could not fetch https://example.com/a.png?x=1, giving up", "could not fetch <url>, giving up"},
		{`KeyError: "negative_prompt"`, "KeyError: <str>"},
		{"Expected bfloat16 but got float32 (resnet50)", "Expected bfloat16 but got float32 (resnet50)"},
		{"can't load the model's weights from weights/unet/model.bin", "can't load the model's weights from <path>"},
		{"invalid input acme/sdxl", "invalid input acme/sdxl"},
		{"  many\t\tspaces\nand lines\x00 ", "many spaces and lines"},
		{"C:\\Users\\me\\x.txt missing", "<path> missing"},
		{"failed at 2025-11-22T09:14:03.5Z: worker lost", "failed at <n>-<n>-<n>T<n>:<n>:<n>Z: worker lost"},
		{"image 1024x768 too large after 1h30m15s", "image <n>x<n> too large after <n>h<n>m<n>s"},
		{"request req_8f3k2l9d0s1a2b3c failed on x86_64", "request req_<id> failed on x86_64"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Fingerprint(tt.in); got != tt.want {
				t.Errorf("Fingerprint = %q\nwant          %q", got, tt.want)
			}
		})
	}
}

// TestFingerprintGroups checks which errors count as the same one.
func TestFingerprintGroups(t *testing.T) {
	same := [][2]string{
		{"CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 39.59 GiB total)",
			"CUDA out of memory. Tried to allocate 20.00 MiB (GPU 3; 79.15 GiB total)"},
		{"File /tmp/abc123/x.png not found", "File /tmp/zz9/y.png not found"},
		{"Prediction h2pq8d1rbnrj00cjx3ksw6tk5g was canceled by 4f9e1c2a-0b7d-4e8f-9a1b-2c3d4e5f6a7b",
			"Prediction q7vz2mcb3drj00cjx4krhbn9zm was canceled by 7a7e1c2a-0b7d-4e8f-9a1b-2c3d4e5f6000"},
		{"Downloading https://replicate.delivery/pbxt/abc/in.png failed: 404",
			"Downloading https://example.com/other.jpg failed: 500"},
		{"ValueError: 'cat' is not a valid scheduler", `ValueError: "dog" is not a valid scheduler`},
		{"NSFW content detected.", "NSFW  content\tdetected. "},
		{"Prediction failed at 2025-11-22T09:14:03Z: worker lost", "Prediction failed at 2025-12-01T23:59:59Z: worker lost"},
		{"request req_8f3k2l9d0s1a2b3c failed", "request req_1a2b3c4d5e6f7g8h failed"},
		{"image 1024x768 too large", "image 2048x1536 too large"},
		{"timeout after 1h30m", "timeout after 2h15m"},
	}
	for _, p := range same {
		if a, b := Fingerprint(p[0]), Fingerprint(p[1]); a != b {
			t.Errorf("%q and %q differ:\n%q\n%q", p[0], p[1], a, b)
		}
	}
	different := [][2]string{
		{"CUDA out of memory", "NSFW content detected"},
		{"Expected float16 got float32", "Expected bfloat16 got float32"},
		{"model acme/sdxl not found", "model acme/flux not found"},
	}
	for _, p := range different {
		if a, b := Fingerprint(p[0]), Fingerprint(p[1]); a == b {
			t.Errorf("%q and %q both give %q", p[0], p[1], a)
		}
	}
}

func TestFingerprintLength(t *testing.T) {
	long := strings.Repeat("word ", 1000)
	got := Fingerprint(long)
	if n := utf8.RuneCountInString(got); n > MaxFingerprint {
		t.Errorf("%d characters", n)
	}
	if !strings.HasSuffix(got, "word …") {
		t.Errorf("cut = %q, want whole words and an ellipsis", got[len(got)-20:])
	}
	if got := Fingerprint("data: " + strings.Repeat("QUJD", 100)); got != "data: <blob>" {
		t.Errorf("a base64 blob gives %q", got)
	}
}

func FuzzFingerprint(f *testing.F) {
	for _, s := range []string{
		"CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 39.59 GiB total capacity)",
		"File /tmp/abc123/x.png not found",
		`FileNotFoundError: [Errno 2] No such file or directory: '/src/weights/model.safetensors'`,
		"request 123e4567-e89b-12d3-a456-426614174000 failed at 0xdeadbeef1",
		"could not fetch https://example.com/a.png?x='1', giving up",
		`it's 'a "b' c" d` + "`e`",
		"('a b')/tmp/x x.'y z'.5 =/a (/) C:\\x",
		"<script>alert(1)</script> @everyone *bold* _it_",
		strings.Repeat("x1 ", 200),
		strings.Repeat("é", 300),
		"\xff\xfe bad utf-8 \u202e rtl \u200b",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fp := Fingerprint(s)
		if n := utf8.RuneCountInString(fp); n > MaxFingerprint {
			t.Fatalf("%d characters: %q", n, fp)
		}
		if !utf8.ValidString(fp) {
			t.Fatalf("invalid UTF-8: %q", fp)
		}
		if again := Fingerprint(fp); again != fp {
			t.Fatalf("not idempotent:\n in  %q\n 1st %q\n 2nd %q", s, fp, again)
		}
	})
}
