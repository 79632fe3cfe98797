package profiles

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strings"
	"text/template"
)

// Data is what every template sees (the fixed, documented data model).
// Addresses are strings so templates print them directly.
type Data struct {
	// Server is the address the client reached bootyard on ("10.0.0.2").
	Server string
	// MAC is the client's MAC, lowercase with colons; MACDashed with
	// dashes, as in rendered names.
	MAC       string
	MACDashed string
	// Hostname is the machine's host name, or the dashed MAC when the
	// machine has none (clients matched by a rule).
	Hostname string
	// IP is the machine's fixed address, else the client's address when
	// known, else "".
	IP string
	// Arch is the client's firmware from option 93 ("bios", "efi-x64"),
	// "" when the request does not tell (a rendered file fetched later).
	Arch string
	// Profile and Image name the chosen profile and its image.
	Profile string
	Image   string
	// ImageDir is where the image is served: "images/<image>" ("" without
	// an image).
	ImageDir string
	// Files are the image's files, as paths inside the image (empty when
	// the image is not staged or no image store was given).
	Files []string
	// Vars are the profile's vars overridden by the machine's.
	Vars map[string]string
	// Kernel and Initrd are the next stage's files as served over TFTP and
	// FTP ("images/<image>/linux"); Cmdline is the rendered command line
	// (empty inside the cmdline template itself).
	Kernel  string
	Initrd  []string
	Cmdline string
	// Local is true when the profile is "local" (boot from disk).
	Local bool
}

// funcs are the helper functions templates may call besides the
// text/template built-ins.
var funcs = template.FuncMap{
	"base":    path.Base,
	"dir":     path.Dir,
	"join":    strings.Join,
	"lower":   strings.ToLower,
	"upper":   strings.ToUpper,
	"replace": strings.ReplaceAll,
	"default": func(def, v string) string {
		if v == "" {
			return def
		}
		return v
	},
}

// Built-in templates. Paths use absolute TFTP URLs (iPXE), (tftp,server)
// devices (GRUB) and the "::" root prefix (pxelinux), so they work whatever
// directory the loader was fetched from.
const (
	builtinIPXE = `#!ipxe
# bootyard: {{.Hostname}} ({{.MAC}}) profile {{.Profile}}
{{- if .Local}}
# boot from the local disk: BIOS hands over to the first disk, UEFI returns
# to the firmware's next boot option
iseq ${platform} pcbios && sanboot --no-describe --drive 0x80 ||
exit
{{- else if .Kernel}}
kernel tftp://{{.Server}}/{{.Kernel}}{{range .Initrd}} initrd={{base .}}{{end}}{{if .Cmdline}} {{.Cmdline}}{{end}}
{{- range .Initrd}}
initrd --name {{base .}} tftp://{{$.Server}}/{{.}}
{{- end}}
boot
{{- else}}
echo bootyard: profile {{.Profile}} names no kernel
exit
{{- end}}
`
	builtinGRUB = `# bootyard: {{.Hostname}} ({{.MAC}}) profile {{.Profile}}
set timeout=0
{{- if .Local}}
if [ "$grub_platform" = "efi" ]; then
  exit
fi
set root=(hd0)
chainloader +1
boot
{{- else if .Kernel}}
menuentry "{{.Profile}}" {
  linux (tftp,{{.Server}})/{{.Kernel}}{{if .Cmdline}} {{.Cmdline}}{{end}}
{{- if .Initrd}}
  initrd{{range .Initrd}} (tftp,{{$.Server}})/{{.}}{{end}}
{{- end}}
}
{{- else}}
echo "bootyard: profile {{.Profile}} names no kernel"
exit
{{- end}}
`
	builtinPXELinux = `# bootyard: {{.Hostname}} ({{.MAC}}) profile {{.Profile}}
DEFAULT bootyard
PROMPT 0
TIMEOUT 0
{{- if .Local}}
LABEL bootyard
  LOCALBOOT 0
{{- else if .Kernel}}
LABEL bootyard
  KERNEL ::{{.Kernel}}
{{- if .Initrd}}
  INITRD {{range $i, $f := .Initrd}}{{if $i}},{{end}}::{{$f}}{{end}}
{{- end}}
{{- if .Cmdline}}
  APPEND {{.Cmdline}}
{{- end}}
{{- else}}
LABEL bootyard
  LOCALBOOT 0
{{- end}}
`
)

// tmpl is a parsed template with the config key and origin its errors name.
type tmpl struct {
	key  string // config key, "profile[0].cmdline"
	from string // "" for inline, else the template file's path
	t    *template.Template
}

// parseTemplate parses text as a template named for its key. Its errors
// name the line ("line 3: ...").
func parseTemplate(key, from, text string) (*tmpl, error) {
	name := key
	if from != "" {
		name = from
	}
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s", templateMsg(err, from))
	}
	return &tmpl{key: key, from: from, t: t}, nil
}

// execute renders the template with d.
func (t *tmpl) execute(d *Data) ([]byte, error) {
	var b bytes.Buffer
	if err := t.t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("%s", templateMsg(err, t.from))
	}
	return b.Bytes(), nil
}

var tmplErrRE = regexp.MustCompile(`^template: (.*?):(\d+)(?::(\d+))?: (.*)$`)

// templateMsg rewrites text/template's "template: NAME:LINE:COL: msg" as
// "line LINE: msg" (or "FILE line LINE: msg" for a template file).
func templateMsg(err error, from string) string {
	msg := err.Error()
	m := tmplErrRE.FindStringSubmatch(msg)
	if m == nil {
		return strings.TrimPrefix(msg, "template: ")
	}
	where := "template line " + m[2]
	if from != "" {
		where = from + " line " + m[2]
	}
	rest := m[4]
	// Execution errors repeat the name: `executing "NAME" at <.X>: ...`.
	if i := strings.Index(rest, `" at <`); strings.HasPrefix(rest, `executing "`) && i > 0 {
		rest = "at <" + rest[i+len(`" at <`):]
	}
	return where + ": " + rest
}
