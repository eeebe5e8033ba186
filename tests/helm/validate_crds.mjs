// Validates Prometheus Operator objects (ServiceMonitor, PrometheusRule) against the CRD
// schemas compiled into @kubernetes-models/prometheus-operator (installed by `make tools-helm`).
// Usage: node validate_crds.mjs NODE_MODULES_DIR < objects.json; prints one error (or null)
// per object, as a JSON array, in input order.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modelsDir = join(process.argv[2], "@kubernetes-models", "prometheus-operator",
  "monitoring.coreos.com", "v1");
const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const object of objects) {
  let model;
  try {
    model = (await import(pathToFileURL(join(modelsDir, `${object.kind}.js`)).href))[object.kind];
  } catch (err) {
    results.push(`no schema for ${object.apiVersion} ${object.kind}: ${err.message}`);
    continue;
  }
  try {
    new model(object).validate();
    results.push(object.apiVersion === model.apiVersion ? null
      : `apiVersion ${object.apiVersion}, expected ${model.apiVersion}`);
  } catch (err) {
    results.push(String(err.message));
  }
}
process.stdout.write(JSON.stringify(results));
