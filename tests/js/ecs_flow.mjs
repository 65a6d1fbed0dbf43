// The main ECS flows through the AWS SDK for JavaScript v3, a client
// written independently of botocore: its own serializer, parser, SigV4
// signer, error mapping and waiters.  Driven by tests/integration/
// test_js_sdk.py, which reads the one JSON document printed on stdout.
//
// Environment: BERTH_ENDPOINT (http://127.0.0.1:PORT), AWS_REGION,
// BERTH_AKID, BERTH_SECRET, BERTH_IMAGE (an image the daemon can pull),
// BERTH_SUBNET (the awsvpc subnet id to give RunTask).
import {
  ECSClient, CreateClusterCommand, DescribeClustersCommand, ListClustersCommand,
  RegisterTaskDefinitionCommand, DescribeTaskDefinitionCommand, RunTaskCommand,
  DescribeTasksCommand, StopTaskCommand, ListTasksCommand, CreateServiceCommand,
  UpdateServiceCommand, DeleteServiceCommand, DescribeServicesCommand,
  TagResourceCommand, UntagResourceCommand, ListTagsForResourceCommand,
  DeleteClusterCommand, DeregisterTaskDefinitionCommand,
  waitUntilTasksRunning, waitUntilTasksStopped, waitUntilServicesStable,
  waitUntilServicesInactive,
} from "@aws-sdk/client-ecs";

const env = process.env;
const client = (secret) => new ECSClient({
  endpoint: env.BERTH_ENDPOINT,
  region: env.AWS_REGION,
  credentials: { accessKeyId: env.BERTH_AKID, secretAccessKey: secret },
  maxAttempts: 1,
});
const ecs = client(env.BERTH_SECRET);
const cluster = "jsflow";
const network = {
  awsvpcConfiguration: { subnets: [env.BERTH_SUBNET], assignPublicIp: "DISABLED" },
};
const waitCfg = { client: ecs, maxWaitTime: 120, minDelay: 1, maxDelay: 2 };
const out = {};

// The error as the SDK maps it: its class name, the modelled $fault, the
// HTTP status and the message.
async function failure(p) {
  try {
    await p;
    return null;
  } catch (e) {
    return { name: e.name, fault: e.$fault, status: e.$metadata?.httpStatusCode,
      message: e.message };
  }
}

async function clusters() {
  const c = await ecs.send(new CreateClusterCommand({
    clusterName: cluster, tags: [{ key: "team", value: "js" }] }));
  out.createCluster = { arn: c.cluster.clusterArn, status: c.cluster.status };
  const d = await ecs.send(new DescribeClustersCommand({ clusters: [cluster, "nosuch"],
    include: ["TAGS"] }));
  out.describeClusters = { names: d.clusters.map((x) => x.clusterName),
    tags: d.clusters[0].tags, failures: d.failures };
  const l = await ecs.send(new ListClustersCommand({}));
  out.listClusters = l.clusterArns;
}

async function taskDefinition() {
  const r = await ecs.send(new RegisterTaskDefinitionCommand({
    family: "jsapp", networkMode: "awsvpc", cpu: "256", memory: "512",
    requiresCompatibilities: ["FARGATE"],
    containerDefinitions: [{ name: "main", image: env.BERTH_IMAGE, essential: true,
      entryPoint: ["/bin/sh", "-c"], command: ["echo up; exec sleep 600"] }],
  }));
  const td = r.taskDefinition;
  out.register = { arn: td.taskDefinitionArn, revision: td.revision, status: td.status,
    registeredAt: td.registeredAt instanceof Date };
  const d = await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: "jsapp" }));
  out.describeTaskDefinition = { arn: d.taskDefinition.taskDefinitionArn,
    container: d.taskDefinition.containerDefinitions[0].name };
  return td.taskDefinitionArn;
}

async function tasks(td) {
  const r = await ecs.send(new RunTaskCommand({ cluster, taskDefinition: td,
    launchType: "FARGATE", networkConfiguration: network }));
  const arn = r.tasks[0].taskArn;
  out.runTask = { failures: r.failures, lastStatus: r.tasks[0].lastStatus };
  const running = await waitUntilTasksRunning(waitCfg, { cluster, tasks: [arn] });
  out.waitRunning = running.state;
  const d = await ecs.send(new DescribeTasksCommand({ cluster, tasks: [arn] }));
  const t = d.tasks[0];
  out.describeTasks = { lastStatus: t.lastStatus, startedAt: t.startedAt instanceof Date,
    containers: t.containers.map((c) => c.lastStatus),
    eni: t.attachments[0].details.find((x) => x.name === "privateIPv4Address")?.value };
  const l = await ecs.send(new ListTasksCommand({ cluster, desiredStatus: "RUNNING" }));
  out.listTasks = l.taskArns;
  await ecs.send(new StopTaskCommand({ cluster, task: arn, reason: "js says stop" }));
  const stopped = await waitUntilTasksStopped(waitCfg, { cluster, tasks: [arn] });
  out.waitStopped = stopped.state;
  const s = (await ecs.send(new DescribeTasksCommand({ cluster, tasks: [arn] }))).tasks[0];
  out.stopped = { stopCode: s.stopCode, stoppedReason: s.stoppedReason,
    stoppedAt: s.stoppedAt instanceof Date };
  return arn;
}

async function services(td) {
  const c = await ecs.send(new CreateServiceCommand({ cluster, serviceName: "jssvc",
    taskDefinition: td, desiredCount: 1, launchType: "FARGATE",
    networkConfiguration: network }));
  out.createService = { status: c.service.status, desired: c.service.desiredCount };
  const stable = await waitUntilServicesStable(waitCfg, { cluster, services: ["jssvc"] });
  out.waitStable = stable.state;
  const d = await ecs.send(new DescribeServicesCommand({ cluster, services: ["jssvc"] }));
  out.describeServices = { running: d.services[0].runningCount,
    deployments: d.services[0].deployments.map((x) => x.rolloutState),
    events: d.services[0].events.length > 0 };
  await ecs.send(new UpdateServiceCommand({ cluster, service: "jssvc", desiredCount: 0 }));
  await ecs.send(new DeleteServiceCommand({ cluster, service: "jssvc" }));
  const gone = await waitUntilServicesInactive(waitCfg, { cluster, services: ["jssvc"] });
  out.waitInactive = gone.state;
}

async function tags() {
  const arn = out.createCluster.arn;
  await ecs.send(new TagResourceCommand({ resourceArn: arn,
    tags: [{ key: "env", value: "test" }] }));
  await ecs.send(new UntagResourceCommand({ resourceArn: arn, tagKeys: ["team"] }));
  out.tags = (await ecs.send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags;
}

async function errors(td) {
  out.errors = {
    unknownTaskDefinition: await failure(ecs.send(new DescribeTaskDefinitionCommand({
      taskDefinition: "nosuchfamily:1" }))),
    unknownCluster: await failure(ecs.send(new RunTaskCommand({ cluster: "nosuch",
      taskDefinition: td, networkConfiguration: network }))),
    badFamily: await failure(ecs.send(new RegisterTaskDefinitionCommand({
      family: "bad family!", containerDefinitions: [{ name: "a", image: env.BERTH_IMAGE }] }))),
    wrongSecret: await failure(client("not-the-secret").send(new ListClustersCommand({}))),
  };
}

async function cleanup(td) {
  await ecs.send(new DeregisterTaskDefinitionCommand({ taskDefinition: td }));
  const d = await ecs.send(new DeleteClusterCommand({ cluster }));
  out.deleteCluster = d.cluster.status;
}

await clusters();
const td = await taskDefinition();
await tasks(td);
await services(td);
await tags();
await errors(td);
await cleanup(td);
process.stdout.write(JSON.stringify(out) + "\n");
