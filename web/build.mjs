// Builds dist/: the pages, helpline-client.js, widget.js and assets/ (bundled JS and CSS).
//
// Files under assets/ get content-hashed names (the daemon caches them for a year), and the
// pages are written with those names; the pages, widget.js and helpline-client.js keep theirs.
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { basename, join, relative } from "node:path";

import * as esbuild from "esbuild";

const out = "dist";
const assets = join(out, "assets");
const common = { bundle: true, minify: true, target: ["es2020"], logLevel: "warning", legalComments: "none" };

await rm(out, { recursive: true, force: true });
await mkdir(assets, { recursive: true });

const [, , pages, styles] = await Promise.all([
  // the client for any site: an ES module with the msgpack codec inside
  esbuild.build({ ...common, minify: false, entryPoints: ["src/client/helpline-client.js"], format: "esm", outfile: join(out, "helpline-client.js") }),
  // the widget: one classic script; its CSS travels inside it, into its shadow root
  esbuild.build({ ...common, entryPoints: ["src/widget/widget.js"], format: "iife", outfile: join(out, "widget.js"), loader: { ".css": "text" } }),
  // the pages' scripts and styles
  esbuild.build({
    ...common,
    entryPoints: { console: "src/console/main.js", admin: "src/admin/main.js" },
    format: "esm",
    outdir: assets,
    entryNames: "[name]-[hash]",
    chunkNames: "chunk-[hash]",
    splitting: true,
    metafile: true,
  }),
  esbuild.build({
    ...common,
    entryPoints: { console: "src/styles/console.css", admin: "src/styles/admin.css", site: "src/styles/site.css", favicon: "src/assets/favicon.svg" },
    outdir: assets,
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    loader: { ".svg": "file" },
    metafile: true,
  }),
]);

// "assets/console.js" -> "assets/console-3FX2.js", from what esbuild wrote
const names = new Map();
for (const result of [pages, styles]) {
  for (const [file, output] of Object.entries(result.metafile.outputs)) {
    if (!output.entryPoint) continue;
    const source = basename(output.entryPoint).replace(/^main\.js$/, basename(output.entryPoint.replace(/\/main\.js$/, "")) + ".js");
    const hashed = relative(out, file);
    names.set(`assets/${source}`, hashed);
  }
}
for (const file of await readdir(assets)) {
  // the svg entry leaves a tiny JS stub beside the hashed file; only the svg is wanted
  if (file.startsWith("favicon-") && file.endsWith(".js")) await rm(join(assets, file));
}
const svg = (await readdir(assets)).find((file) => file.startsWith("favicon-") && file.endsWith(".svg"));
names.set("assets/favicon.svg", `assets/${svg}`);

for (const page of await readdir("src/pages")) {
  if (!page.endsWith(".html")) continue;
  let html = await readFile(join("src/pages", page), "utf8");
  html = html.replace(/assets\/[\w.-]+/g, (name) => {
    if (!names.has(name)) throw new Error(`${page} names ${name}, which the build did not make`);
    return names.get(name);
  });
  await writeFile(join(out, page), html);
}
console.log(`built ${out}/`);
