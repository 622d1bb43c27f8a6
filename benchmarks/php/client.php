<?php
// php client.php PORT MODE N [BATCH] [SIZE]   -> one JSON line: {"done":..,"bad":..,"secs":..}
// MODE: fg (doNormal, one at a time), batch (addTask, BATCH in flight),
//       bg (doBackground, one at a time), bgbatch (addTaskBackground, BATCH in flight).
[$_, $port, $mode, $n] = $argv;
$n = (int)$n; $batch = (int)($argv[4] ?? 100); $size = (int)($argv[5] ?? 16);
$payload = str_repeat('x', $size);
$c = new GearmanClient();
$c->addServer('127.0.0.1', (int)$port);
$c->setTimeout(120000);
$done = 0; $bad = 0;
$t0 = microtime(true);
if ($mode === 'fg') {
    for ($i = 0; $i < $n; $i++) {
        $r = $c->doNormal('bench', $payload);
        if ($c->returnCode() == GEARMAN_SUCCESS && $r === $payload) $done++; else $bad++;
    }
} elseif ($mode === 'bg') {
    for ($i = 0; $i < $n; $i++) {
        $c->doBackground('bench', $payload);
        if ($c->returnCode() == GEARMAN_SUCCESS) $done++; else $bad++;
    }
} else {
    $background = $mode === 'bgbatch';
    $c->setCompleteCallback(function ($t) use (&$done, &$bad, $payload) {
        if ($t->data() === $payload) $done++; else $bad++;
    });
    $c->setCreatedCallback(function ($t) use (&$done, $background) { if ($background) $done++; });
    $c->setFailCallback(function ($t) use (&$bad) { $bad++; });
    for ($i = 0; $i < $n; $i += $batch) {
        for ($j = 0; $j < $batch && $i + $j < $n; $j++) {
            if ($background) $c->addTaskBackground('bench', $payload);
            else $c->addTask('bench', $payload);
        }
        if (!$c->runTasks()) $bad++;
    }
}
printf("{\"done\": %d, \"bad\": %d, \"secs\": %.6f}\n", $done, $bad, microtime(true) - $t0);
