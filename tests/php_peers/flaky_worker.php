<?php
// php-gearman worker whose "php_flaky" job fails twice, then succeeds: the first
// call for a workload ends with GEARMAN_WORK_FAIL, the second throws (php-gearman
// sends WORK_EXCEPTION), the third answers "ok after 3".
// usage: php flaky_worker.php HOST PORT
[$_, $host, $port] = $argv;

$calls = [];
$worker = new GearmanWorker();
$worker->addServer($host, (int)$port);
$worker->addFunction("php_flaky", function (GearmanJob $job) use (&$calls) {
    $key = $job->workload();
    $calls[$key] = ($calls[$key] ?? 0) + 1;
    if ($calls[$key] == 1) {
        $job->setReturn(GEARMAN_WORK_FAIL);
        return null;
    }
    if ($calls[$key] == 2) {
        throw new Exception("second call failed");
    }
    return "ok after " . $calls[$key];
});

while (true) {
    try {
        $worker->work();
    } catch (Exception $e) {
        // php-gearman has sent WORK_EXCEPTION with the message; keep working.
    }
}
