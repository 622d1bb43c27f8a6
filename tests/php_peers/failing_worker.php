<?php
// php-gearman worker whose jobs go wrong, for the failure-handling tests.
// usage: php failing_worker.php HOST PORT
// "flaky_fail" ends each job with GEARMAN_WORK_FAIL, "flaky_throw" and
// "flaky_raise" throw (php-gearman then sends WORK_EXCEPTION),
// "flaky_sleep" sleeps 30 s (to be killed mid-job); "flaky_ok" succeeds.
// Each job start is printed as "<function> <handle> <unique> <epoch seconds>".
[$_, $host, $port] = $argv;

$worker = new GearmanWorker();
$worker->addServer($host, (int)$port);
$worker->setId("php-failing");
$started = function (GearmanJob $job) {
    printf("%s %s %s %.3f\n", $job->functionName(), $job->handle(), $job->unique(), microtime(true));
    fflush(STDOUT);
};
$worker->addFunction("flaky_fail", function (GearmanJob $job) use ($started) {
    $started($job);
    $job->setReturn(GEARMAN_WORK_FAIL);
    return null;
});
$throw = function (GearmanJob $job) use ($started) {
    $started($job);
    throw new Exception("disk full");
};
$worker->addFunction("flaky_throw", $throw);
$worker->addFunction("flaky_raise", $throw);
$worker->addFunction("flaky_sleep", function (GearmanJob $job) use ($started) {
    $started($job);
    sleep(30);
    return "late";
});
$worker->addFunction("flaky_ok", function (GearmanJob $job) use ($started) {
    $started($job);
    return "ok";
});

while (true) {
    try {
        $worker->work();
    } catch (Exception $e) {
        // php-gearman has sent WORK_EXCEPTION with the message; keep working.
    }
}
