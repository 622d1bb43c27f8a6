<?php
// php-gearman worker for the cross-language tests.
// usage: php worker.php HOST PORT COUNT
// Functions: "reverse" returns the workload reversed byte by byte; "digest"
// returns "<length> <sha256>" of the workload; "fail" fails the job.
// Exits after COUNT jobs.
[$_, $host, $port, $count] = $argv;

$worker = new GearmanWorker();
$worker->addServer($host, (int)$port);
$worker->setId("php-peer");
$worker->addFunction("reverse", function (GearmanJob $job) {
    return strrev($job->workload());
});
$worker->addFunction("digest", function (GearmanJob $job) {
    $data = $job->workload();
    return strlen($data) . " " . hash("sha256", $data);
});
$worker->addFunction("fail", function (GearmanJob $job) {
    $job->sendFail();
    return null;
});

for ($done = 0; $done < (int)$count; ) {
    if ($worker->work()) {
        $done++;
    } elseif ($worker->returnCode() != GEARMAN_IO_WAIT && $worker->returnCode() != GEARMAN_NO_JOBS) {
        fwrite(STDERR, "worker error: " . $worker->error() . "\n");
        exit(2);
    }
}
