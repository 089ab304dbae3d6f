package profile

import (
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
)

func TestJava(t *testing.T) {
	m := glibcRoot()
	home := "/usr/lib/jvm/java-17/"
	m.exe(home+"bin/java", elftest.Build(elftest.Spec{Interp: ldx86, Needed: []string{"libz.so.1", "libjli.so", "libc.so.6"}, RPath: "$ORIGIN:$ORIGIN/../lib"}))
	m.link("/etc/alternatives/java", home+"bin/java")
	m.link("/usr/bin/java", "/etc/alternatives/java")
	m.file(home+"lib/libjli.so", elftest.Build(elftest.Spec{Needed: []string{"libz.so.1", "libc.so.6"}, RPath: "$ORIGIN"}), 0o644)
	m.file(home+"lib/server/libjvm.so", elftest.Build(elftest.Spec{Needed: []string{"libm.so.6", "libc.so.6"}}), 0o644)
	m.text(home+"lib/server/classes.jsa", "cds")
	m.file(home+"lib/libjava.so", elftest.Build(elftest.Spec{Needed: []string{"libjvm.so", "libc.so.6"}, RPath: "$ORIGIN"}), 0o644)
	m.file(home+"lib/libjimage.so", elftest.Build(elftest.Spec{Needed: []string{"libjvm.so"}, RPath: "$ORIGIN"}), 0o644)
	m.text(home+"lib/modules", "jimage")
	m.link(home+"lib/jvm.cfg", "/etc/java-17/jvm-amd64.cfg")
	m.text("/etc/java-17/jvm-amd64.cfg", "-server KNOWN\n")
	m.link(home+"conf/security/java.security", "/etc/java-17/security/java.security")
	m.text("/etc/java-17/security/java.security", "")
	for _, l := range []string{"libnio.so", "libzip.so", "libextnet.so"} {
		m.file(home+"lib/"+l, elftest.Build(elftest.Spec{Needed: []string{"libjava.so"}, RPath: "$ORIGIN"}), 0o644)
	}
	m.link(home+"conf/net.properties", "/etc/java-17/net.properties")
	m.text("/etc/java-17/net.properties", "")
	m.text("/app/args", "-Dfoo=bar # a comment\n--add-opens \"java.base/java.lang=ALL-UNNAMED\"\n")
	for _, j := range []string{"/app/lib/b.jar", "/app/lib/a.jar", "/app/lib/readme.txt", "/app/extra.jar", "/agent.jar", "/app/app.jar"} {
		m.text(j, "PK")
	}
	m.dir("/app/classes")

	p := mustStatic(t, m, Config{Entrypoint: []string{"java", "-Xmx1g", "-javaagent:/agent.jar=opt",
		"-cp", "/app/lib/*:/app/classes:extra.jar", "@/app/args", "com.example.Main", "-cp", "ignored.jar"}, WorkingDir: "/app"})
	want := cat([]string{"/usr/bin/java", "/etc/alternatives/java", home + "bin/java"}, loaderFiles, []string{
		x64lib + "libz.so.1", x64lib + "libz.so.1.2.13", home + "lib/libjli.so", x64lib + "libc.so.6",
		"/app/args",
		home + "lib/jvm.cfg", "/etc/java-17/jvm-amd64.cfg",
		home + "lib/server/libjvm.so", x64lib + "libm.so.6",
		home + "lib/libjimage.so", home + "lib/modules",
		home + "lib/libjava.so", home + "lib/server/classes.jsa",
		// libjsvml and libnet are absent, and so is logging.properties.
		home + "lib/libnio.so", home + "lib/libzip.so",
		home + "conf/security/java.security", "/etc/java-17/security/java.security",
		home + "lib/libextnet.so",
		home + "conf/net.properties", "/etc/java-17/net.properties",
		"/agent.jar",
		"/app/lib/a.jar", "/app/lib/b.jar", "/app/extra.jar",
	})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings %q", p.Warnings)
	}

	// -jar: the launcher reads the jar before it loads the JVM.
	p = mustStatic(t, m, Config{Entrypoint: []string{"java", "-jar", "app.jar"}, WorkingDir: "/app"})
	if !contains(p.Files, "/app/app.jar") || indexOf(p.Files, "/app/app.jar") > indexOf(p.Files, home+"lib/jvm.cfg") {
		t.Errorf("-jar: %q", p.Files)
	}
}

func TestArgFileArgs(t *testing.T) {
	got := argFileArgs("-cp 'a b.jar':c.jar # comment\n  \"-Dx=1 2\"\nMain")
	want := []string{"-cp", "a b.jar:c.jar", "-Dx=1 2", "Main"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("argFileArgs (-want +got):\n%s", diff)
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
