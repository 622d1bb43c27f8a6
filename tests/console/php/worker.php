<?php
// php-gearman worker for the console's browser tests.
// usage: php worker.php HOST PORT DIR
// "resize": reports progress 1/4, then waits until DIR/release exists, then completes.
// "flaky": fails while DIR/healed does not exist; once it does, completes and
//          writes the workload to DIR/ran.
// "noop": completes at once.
[$_, $host, $port, $dir] = $argv;

$worker = new GearmanWorker();
$worker->addServer($host, (int)$port);
$worker->setId("php-console-worker");
$worker->setTimeout(200);
$worker->addFunction("resize", function (GearmanJob $job) use ($dir) {
    $job->sendStatus(1, 4);
    while (!file_exists("$dir/release")) {
        usleep(50000);
    }
    return "resized";
});
$worker->addFunction("flaky", function (GearmanJob $job) use ($dir) {
    if (!file_exists("$dir/healed")) {
        $job->sendFail();
        return null;
    }
    file_put_contents("$dir/ran", $job->workload());
    return "ok";
});
$worker->addFunction("noop", function (GearmanJob $job) {
    return "";
});

while (!file_exists("$dir/stop")) {
    if (!$worker->work()
        && $worker->returnCode() != GEARMAN_IO_WAIT
        && $worker->returnCode() != GEARMAN_NO_JOBS
        && $worker->returnCode() != GEARMAN_TIMEOUT) {
        fwrite(STDERR, "worker error: " . $worker->error() . "\n");
        exit(2);
    }
}
