#!/usr/bin/env bash
# Builds the Debian package dist/pkg/nrd_<version>_amd64.deb with dpkg-deb, from the built tree
# (`npm run build`), offline: production node_modules are a pruned copy of the installed ones.
#   scripts/package.sh [--no-build] [--version V] [--out DIR]
# --no-build: use dist/ and bpf/*.bpf.o as they are (the packaging tests build once).
# --version:  the package version (default: package.json's), e.g. to build an upgrade.
# --out:      where the .deb goes (default dist/pkg).
# Layout: /usr/lib/nrd/{package.json,dist/daemon,bpf,node_modules}; /usr/bin/{nrd,nrdctl,nrd-cni}
# and /usr/lib/cni/nrd-cni are relative symlinks into it, so the tree also works under dpkg --root.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
build=1
version=""
out="$root/dist/pkg"
while [ $# -gt 0 ]; do
	case "$1" in
	--no-build) build=0 ;;
	--version) version="$2"; shift ;;
	--out) out="$2"; shift ;;
	*) echo "usage: scripts/package.sh [--no-build] [--version V] [--out DIR]" >&2; exit 64 ;;
	esac
	shift
done
[ -n "$version" ] || version="$(node -p 'require("./package.json").version')"
if ! [[ "$version" =~ ^[0-9][0-9A-Za-z.+~-]*$ ]]; then
	echo "package: $version is not a Debian version" >&2
	exit 64
fi
if [ "$build" = 1 ]; then
	npx tsc -p tsconfig.json
	make -s -C bpf
fi

mkdir -p "$out"
work="$(mktemp -d "$out/.stage.XXXXXX")"
trap 'rm -rf "$work"' EXIT
st="$work/root"
lib="$st/usr/lib/nrd"
mkdir -p "$lib" "$st/usr/bin" "$st/DEBIAN"

# The program. Source maps are left out: Node reads them only with --enable-source-maps, which
# nrd.service does not pass, and they point at TypeScript sources the package does not hold.
# Stack traces name the shipped .js files, which match the tagged build. Not shipped either: the
# packaging generators (dist/daemon/packaging) and anything that looks like a test.
mkdir -p "$lib/dist"
(cd dist && find daemon -name '*.js' ! -name '*.test.js' ! -path 'daemon/packaging/*' -print0 |
	xargs -0 cp --parents -t "$lib/dist")
# ESM: "type": "module" makes Node load the .js files as modules; nrd --version reads "version".
node -e '
const p = require("./package.json");
const out = { name: p.name, version: process.argv[1], description: p.description, license: p.license, private: true, type: p.type, dependencies: p.dependencies };
process.stdout.write(JSON.stringify(out, null, 2) + "\n");' "$version" >"$lib/package.json"
mkdir -p "$lib/bpf"
cp bpf/*.bpf.o "$lib/bpf/"
for e in main.js cli/nrdctl.js cni/main.js; do
	[ -f "$lib/dist/daemon/$e" ] && chmod 0755 "$lib/dist/daemon/$e"
done

# Production node_modules: a copy of the installed tree pruned of dev dependencies (offline).
mods="$work/mods"
mkdir -p "$mods"
cp package.json package-lock.json "$mods/"
cp -a node_modules "$mods/"
(cd "$mods" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund --loglevel=error >/dev/null)
nm="$mods/node_modules"
# Native code: only linux-x64 glibc binaries. koffi's x64 loader package also carries a musl build;
# netlink ships prebuilds for other architectures and its C++ sources. koffi's C++ sources and vendor/
# are the sources and headers its build-from-source needs, never loaded at run time.
rm -rf "$nm/@koromix/koffi-linux-x64/musl_x64" "$nm/koffi/vendor" "$nm/koffi/doc"
find "$nm/koffi/src" -type f ! -name "*.js" ! -name "*.cjs" ! -name "*.mjs" -delete
find "$nm/netlink/prebuilds" -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
rm -rf "$nm/netlink/src" "$nm/netlink/binding.gyp" "$nm/node-addon-api"
# Not needed at run time (and flagged by lintian): type declarations, source maps, tests, docs
# pages that load scripts from CDNs, npm's CLI links and lock metadata, VCS and CI files, shell
# helpers of the packages' own development, and koffi's build-from-source driver.
rm -rf "$nm/.bin" "$nm/koffi/cnoke.cjs"
find "$nm" \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '.package-lock.json' \
	-o -name '*.html' -o -name '*.sh' -o -name '.bin' -o -name '.husky' -o -name '.github' -o -name 'test' -o -name 'tests' \
	-o -name '.npmignore' -o -name '.eslintrc*' -o -name '.travis.yml' -o -name '.gitignore' -o -name '.gitattributes' \) \
	-prune -exec rm -rf {} +
find "$nm" -type d -name '@types' -prune -exec rm -rf {} +
find "$nm" -type d -empty -delete
find "$nm" -type f -exec chmod 0644 {} +
find "$nm" -type d -exec chmod 0755 {} +
# A file that starts with #! is a package's CLI (pino, yaml, node-gyp-build): executable, as npm
# would have made it, though nrd never runs them.
find "$nm" -type f \( -name '*.js' -o -name '*.cjs' -o -name '*.mjs' \) -exec grep -l -m1 -Z '^#!' {} + 2>/dev/null | xargs -0 -r chmod 0755
# Debian ships shared objects stripped of symbols they do not export.
find "$nm" -name '*.node' -exec strip --strip-unneeded {} +
cp -a "$nm" "$lib/node_modules"

# Commands on PATH. nrd-cni appears once its entry point is built, and on PATH only with a man page
# (its --help is the page's source); CNI runtimes find it in /usr/lib/cni either way.
ln -s ../lib/nrd/dist/daemon/main.js "$st/usr/bin/nrd"
ln -s ../lib/nrd/dist/daemon/cli/nrdctl.js "$st/usr/bin/nrdctl"
gen="$work/gen"
node dist/daemon/packaging/gen.js "$gen" "$version"
man="$st/usr/share/man/man8"
mkdir -p "$man"
for page in "$gen"/man/*.8; do
	gzip -9n <"$page" >"$man/$(basename "$page").gz"
done
if [ -f "$lib/dist/daemon/cni/main.js" ]; then
	mkdir -p "$st/usr/lib/cni"
	ln -s ../nrd/dist/daemon/cni/main.js "$st/usr/lib/cni/nrd-cni"
	if [ -f "$gen/man/nrd-cni.8" ]; then
		ln -s ../lib/nrd/dist/daemon/cni/main.js "$st/usr/bin/nrd-cni"
	else
		echo "package: nrd-cni has no --help yet: installed in /usr/lib/cni only, not on PATH" >&2
	fi
fi
install -D -m 0644 "$gen/nrdctl.bash" "$st/usr/share/bash-completion/completions/nrdctl"

# systemd (see systemd/README.md): the units and networkd's drop-in go to the package locations of
# Debian 12 (/lib/systemd/...), where /etc/systemd/... can override them.
install -D -m 0644 systemd/nrd.service "$st/lib/systemd/system/nrd.service"
install -D -m 0644 systemd/sys-fs-bpf-nrd.mount "$st/lib/systemd/system/sys-fs-bpf-nrd.mount"
install -D -m 0644 systemd/nrd-networkd.conf "$st/lib/systemd/networkd.conf.d/nrd.conf"
# Conffiles: the rt_protos names and the site file (0600: it may hold etcd and BGP passwords).
install -D -m 0644 systemd/rt_protos.d/nrd.conf "$st/etc/iproute2/rt_protos.d/nrd.conf"
install -D -m 0600 config/site.example.yaml "$st/etc/nrd/site.yaml"
printf '%s\n' /etc/iproute2/rt_protos.d/nrd.conf /etc/nrd/site.yaml >"$st/DEBIAN/conffiles"

# Documentation and the lintian overrides.
doc="$st/usr/share/doc/nrd"
install -D -m 0644 packaging/deb/copyright "$doc/copyright"
install -m 0644 README.md "$doc/README.md"
install -m 0644 systemd/README.md "$doc/README.systemd.md"
install -D -m 0644 config/cni/10-nrd.conflist "$doc/examples/10-nrd.conflist"
date="$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
printf 'nrd (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- nrd maintainers <nrd@example.org>  %s\n' \
	"$version" "$version" "$date" | gzip -9n >"$doc/changelog.gz"
install -D -m 0644 packaging/deb/nrd.lintian-overrides "$st/usr/share/lintian/overrides/nrd"

for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$st/DEBIAN/$s"; done
size="$(du -sk --exclude=DEBIAN "$st" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/deb/control.in >"$st/DEBIAN/control"
(cd "$st" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$st/DEBIAN/md5sums"
chmod 0644 "$st/DEBIAN/control" "$st/DEBIAN/conffiles" "$st/DEBIAN/md5sums"

deb="$out/nrd_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$st" "$deb" >/dev/null
echo "$deb"
