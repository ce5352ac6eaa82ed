//go:build ignore

// Screenshot renders the default digest of the sample day as the email's HTML and takes a
// picture of it with headless Chromium, for the README:
//
//	go run docs/screenshot.go [-chromium chromium] [-out docs/digest.png]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/mlrelay/relay/templates"
)

func main() {
	chromium := flag.String("chromium", "chromium", "the Chromium (or Chrome) binary")
	out := flag.String("out", "docs/digest.png", "the PNG to write")
	width := flag.Int("width", 760, "window width")
	height := flag.Int("height", 1180, "window height")
	flag.Parse()
	if err := run(*chromium, *out, *width, *height); err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(1)
	}
}

func run(chromium, out string, width, height int) error {
	set, err := templates.Load("")
	if err != nil {
		return err
	}
	m, err := set.RenderDigest("digest", "email", templates.SampleSummaries()[0])
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "digest-screenshot")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	page := filepath.Join(dir, "digest.html")
	if err := os.WriteFile(page, []byte(m.Body), 0o644); err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+abs, "file://"+page)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", chromium, err)
	}
	fmt.Println("wrote", out, "— subject:", m.Title)
	return nil
}
