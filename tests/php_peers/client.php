<?php
// php-gearman client for the cross-language tests.
// usage: php client.php HOST PORT FUNCTION [background]
// The workload is read from stdin; the result is written to stdout as is.
// Exit status: 0 on success, 1 on WORK_FAIL, 2 on any other error.
[$_, $host, $port, $function] = $argv;
$background = ($argv[4] ?? '') === 'background';
$workload = stream_get_contents(STDIN);

$client = new GearmanClient();
$client->addServer($host, (int)$port);
$client->setTimeout(20000);

if ($background) {
    $handle = $client->doBackground($function, $workload);
    if ($client->returnCode() != GEARMAN_SUCCESS) {
        fwrite(STDERR, "error: " . $client->error() . "\n");
        exit(2);
    }
    echo $handle;
    exit(0);
}

$result = $client->doNormal($function, $workload);
switch ($client->returnCode()) {
    case GEARMAN_SUCCESS:
        echo $result;
        exit(0);
    case GEARMAN_WORK_FAIL:
        fwrite(STDERR, "failed\n");
        exit(1);
    default:
        fwrite(STDERR, "error: " . $client->returnCode() . " " . $client->error() . "\n");
        exit(2);
}
