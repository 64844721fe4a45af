// Seed 003's JavaScript SDK, run unchanged against a modelbus server (tests/e2e/test_lotto_api.py).
// Usage: node tests/e2e/lotto_client.js <base_url> <api_key>
// The class is the seed's, character for character. The seed's usage example uses top-level await,
// which a CommonJS script cannot; it runs here inside an async function, with the URL and key
// taken from the command line. The script prints one JSON line for the test to check.

class LotteryAPIClient {
    constructor(baseUrl, apiKey) {
        this.baseUrl = baseUrl.replace(/\/$/, '');
        this.apiKey = apiKey;
    }
    
    async predict(machineType, setsCount = 5, algorithm = 'enhanced') {
        const response = await fetch(`${this.baseUrl}/api/predictions/generate`, {
            method: 'POST',
            headers: {
                'X-API-Key': this.apiKey,
                'Content-Type': 'application/json'
            },
            body: JSON.stringify({
                machine_type: machineType,
                sets_count: setsCount,
                algorithm: algorithm
            })
        });
        
        if (!response.ok) {
            throw new Error(`API Error: ${response.status}`);
        }
        
        return await response.json();
    }
    
    async getHealthCheck() {
        const response = await fetch(`${this.baseUrl}/api/monitoring/health`, {
            headers: { 'X-API-Key': this.apiKey }
        });
        return await response.json();
    }
}

async function main() {
    const [baseUrl, apiKey] = process.argv.slice(2);

    // 사용 예시 (the seed's example; its URL and key come from the command line)
    const client = new LotteryAPIClient(baseUrl, apiKey);

    // 예측 요청
    let result = null;
    try {
        result = await client.predict('3호기', 10, 'premium');
        console.error('예측 결과:', result.predictions.length, 'sets');
    } catch (error) {
        console.error('예측 실패:', error.message);
    }

    const health = await client.getHealthCheck();
    let rejected = null;
    try {
        await client.predict('4호기');
    } catch (error) {
        rejected = error.message;
    }
    console.log(JSON.stringify({ result, health, rejected }));
}

main().catch((error) => {
    console.error(error);
    process.exit(1);
});
